"""Alert triage: people acknowledge and resolve alerts. status.py is the rule (pure), store.py the SQL,
table.py the `alerts list` table."""
