"""tenantdb: a Postgres-first schema package for multi-tenant SaaS."""

__version__ = "0.1.0"
