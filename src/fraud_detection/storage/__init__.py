"""PostgreSQL: schema migrations and the writes of every component."""
