"""`trackrecord db upgrade`: Alembic driven from code, so no alembic.ini has to be found."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import MetaData

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats '%' as interpolation; URLs with escaped passwords contain it.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> None:
    command.current(alembic_config(database_url))


def autogenerate(database_url: str, message: str, metadata: MetaData) -> None:
    """A new revision from the difference between the database and `metadata`: every table,
    the ledger's included (`import ledger.tables`, then `trackrecord.models.Base.metadata`)."""
    cfg = alembic_config(database_url)
    cfg.attributes["target_metadata"] = metadata
    command.revision(cfg, message=message, autogenerate=True)
