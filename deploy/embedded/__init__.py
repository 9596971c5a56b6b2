"""The embedded (no-Docker) stack: Kafka via noida-db, MongoDB via SecantusDB, an SMTP sink
via aiosmtpd, each started as its own process group. Used by `make run` and the tests."""
