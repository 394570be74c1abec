"""binlog-shipper: archive MySQL/MariaDB binary logs, encrypted, to object storage."""

__version__ = "0.1.0"
