"""Data safety: checks on MongoDB, streamed backups to S3, verified restores."""
