"""Tables of the registry database and their migrations.

The same SQLAlchemy Core definitions serve SQLite and PostgreSQL. The schema version lives in
``wk_registry_meta``; :func:`migrate` brings an older database forward one step at a time and
refuses a database written by a newer watchkeeper instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from watchkeeper.registry._errors import RegistryError

__all__ = ["SCHEMA_VERSION", "aliases", "events", "metadata", "migrate", "versions"]

SCHEMA_VERSION = 1

metadata = sa.MetaData()

meta = sa.Table(
    "wk_registry_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

versions = sa.Table(
    "wk_model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("artifact_size", sa.BigInteger, nullable=False),
    sa.Column("output_kind", sa.String(32), nullable=False),
    # JSON kept as text: identical behaviour on every backend, no JSON-type quirks.
    sa.Column("flavor", sa.Text, nullable=False),
    sa.Column("input_schema", sa.Text, nullable=True),
    sa.Column("profile_sha256", sa.String(64), nullable=True),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("data_fingerprint", sa.String(128), nullable=True),
    sa.Column("code_version", sa.String(128), nullable=True),
    sa.Column("trusted", sa.Boolean, nullable=False),
    # Deleted versions keep their row: the number is never reused and history stays whole.
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    # The constraint, not a lock, is what makes concurrent registration safe.
    sa.UniqueConstraint("name", "version", name="uq_wk_model_versions_name_version"),
)

aliases = sa.Table(
    "wk_model_aliases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

events = sa.Table(
    "wk_model_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("alias", sa.String(64), nullable=True),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
)

#: ``MIGRATIONS[n]`` upgrades a database from schema version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}


def migrate(conn: sa.Connection) -> int:
    """Create or upgrade the registry tables inside the caller's transaction.

    Returns the schema version found before migrating (0 for a new database).

    Examples
    --------
    >>> engine = sa.create_engine("sqlite://")
    >>> with engine.begin() as conn:
    ...     migrate(conn), migrate(conn)
    (0, 1)
    """
    meta.create(conn, checkfirst=True)
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    if row is None:
        metadata.create_all(conn, checkfirst=True)
        conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        return 0
    found = int(row[0])
    if found > SCHEMA_VERSION:
        raise RegistryError(
            f"the registry database has schema version {found} but this watchkeeper only "
            f"knows up to {SCHEMA_VERSION}; upgrade watchkeeper to use it"
        )
    for step in range(found, SCHEMA_VERSION):
        MIGRATIONS[step](conn)
    if found < SCHEMA_VERSION:
        conn.execute(
            sa.update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
        )
    return found
