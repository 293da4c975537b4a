"""Audits of distilled data: what it leaks about the real images it came from."""
