"""Catalog migrations by hand, against SOPILOT_DATABASE_URL / SOPILOT_DATA_DIR (or --url).

    python -m sopilot_pipelines.catalog.migrations upgrade
    python -m sopilot_pipelines.catalog.migrations current
    python -m sopilot_pipelines.catalog.migrations revision -m "add x" [--autogenerate]

``revision`` writes a new file into migrations/versions (review it; it is frozen once merged).
"""

from __future__ import annotations

import argparse

from alembic import command

from sopilot_pipelines.catalog.engine import catalog_url, create_catalog_engine, normalize_url
from sopilot_pipelines.catalog.migrations import (
    alembic_config,
    current_revisions,
    head_revisions,
    upgrade,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopilot_pipelines.catalog.migrations")
    parser.add_argument("--url", help="database URL (default: from the environment)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("upgrade", help="apply migrations up to head")
    sub.add_parser("current", help="print the database revision and the head")
    rev = sub.add_parser("revision", help="create a new revision file")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)

    from sopilot_pipelines.settings import settings

    url = normalize_url(args.url or catalog_url(settings().database_url, settings().data_dir))
    if args.cmd == "upgrade":
        ran = upgrade(url)
        print("migrated to head" if ran else "already at head")
    elif args.cmd == "current":
        engine = create_catalog_engine(url)
        try:
            with engine.connect() as conn:
                print("current:", ", ".join(current_revisions(conn)) or "(empty)")
        finally:
            engine.dispose()
        print("head:   ", ", ".join(head_revisions()))
    else:
        command.revision(alembic_config(url), message=args.message, autogenerate=args.autogenerate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
