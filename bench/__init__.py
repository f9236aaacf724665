"""`make bench`: Leasehold measured on the real services (not a test; see bench/README.md)."""
