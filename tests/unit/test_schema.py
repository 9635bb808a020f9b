"""What a versioned migration's checksum covers: its statements, not its comments."""

from fraud_detection.storage.schema import available_migrations, statements_only


def test_comments_go_and_quoted_text_stays():
    sql = ("-- a heading\nCREATE TABLE t (\n    id int,  -- why it is here\n"
           "    s text DEFAULT '--not a comment'\n);\n\n"
           "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n    RETURN 1;  -- in a body: kept\nEND\n$$;")
    assert statements_only(sql) == ("CREATE TABLE t (\n    id int,\n    s text DEFAULT '--not a comment'\n);\n"
                                    "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n"
                                    "    RETURN 1;  -- in a body: kept\nEND\n$$;")


def test_every_migration_file_is_named_for_its_kind():
    """Versioned files NNNN_name.sql in a gapless sequence from 1, then R__name.sql ones."""
    migrations = available_migrations()
    versioned = [m.version for m in migrations if not m.repeatable]
    assert versioned == list(range(1, len(versioned) + 1))
    assert [m.name for m in migrations if m.repeatable] == ["detector_sink", "history_retention", "reader_role"]
