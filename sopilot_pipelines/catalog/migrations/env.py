"""Alembic environment of the catalog.

Normally driven by ``sopilot_pipelines.catalog.migrations.upgrade()``, which hands over a
connection that is already inside a locked transaction (``config.attributes["connection"]``).
Run by hand (``python -m sopilot_pipelines.catalog.migrations ...``) without one, it connects
to ``sqlalchemy.url`` or, failing that, the URL from the environment.
"""

from __future__ import annotations

from alembic import context

from sopilot_pipelines.catalog.migrations import VERSION_TABLE
from sopilot_pipelines.catalog.tables import metadata

config = context.config


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER support for later revisions
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():  # a no-op inside the caller's transaction
            context.run_migrations()
        return

    from sopilot_pipelines.catalog.engine import create_catalog_engine, writer

    engine = create_catalog_engine(config.get_main_option("sqlalchemy.url") or _configured_url())
    try:
        with writer(engine).begin() as conn:
            _configure(conn)
            context.run_migrations()
    finally:
        engine.dispose()


def _configured_url() -> str:
    from sopilot_pipelines.catalog.engine import catalog_url
    from sopilot_pipelines.settings import settings

    return catalog_url(settings().database_url, settings().data_dir)


def run_migrations_offline() -> None:
    from sopilot_pipelines.catalog.engine import normalize_url

    context.configure(
        url=normalize_url(config.get_main_option("sqlalchemy.url") or _configured_url()),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
