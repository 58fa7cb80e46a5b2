"""The PostgreSQL backend of the project: Django's, plus the row-level security setting
(:mod:`apps.tenants.rls`). ``settings.base`` selects it for every PostgreSQL URL."""
