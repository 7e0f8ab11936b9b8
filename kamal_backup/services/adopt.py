"""Adopting snapshots made under other hosts (the original tool's random container names)."""

from __future__ import annotations

import logging

from kamal_backup.errors import OperationFailed, ResticError
from kamal_backup.models import AdoptedSnapshot, AdoptResult, Snapshot
from kamal_backup.services import app_tags, restic_for
from kamal_backup.services.retention import refuses_deletes, safety_snapshot_host
from kamal_backup.settings import Settings

log = logging.getLogger(__name__)

APPEND_ONLY_HINT = (
    "the repository refuses deletes (append-only?): run `kamal-backup adopt` from a trusted "
    "machine that may delete, as for `kamal-backup prune`"
)


def _same(snapshot: Snapshot) -> tuple[object, ...]:
    return (snapshot.time, tuple(sorted(snapshot.tags)), tuple(snapshot.paths), snapshot.tree)


def adopt(settings: Settings, *, dry_run: bool = False) -> AdoptResult:
    """Rewrites this app's snapshots (its app: tag) made under another host to RESTIC_HOST with
    `restic rewrite --new-host --forget`, so retention, `latest` and evidence see one history.

    Safety snapshots of production restores keep their own host. A snapshot whose copy under
    RESTIC_HOST already exists (an earlier adopt that could not delete) only has its original
    forgotten.
    """
    restic = restic_for(settings)
    restic.require_supported_version()
    every = restic.snapshots(app_tags(settings))
    host = settings.host
    own = {host, safety_snapshot_host(settings)}
    foreign = sorted(
        (s for s in every if s.hostname not in own and not s.pre_restore), key=lambda s: s.time
    )
    result = AdoptResult(
        dry_run=dry_run,
        host=host,
        snapshots=[
            AdoptedSnapshot(id=s.id, time=s.time, hostname=s.hostname, type=s.kind, run=s.run)
            for s in foreign
        ],
    )
    if dry_run or not foreign:
        return result
    copies = {_same(s) for s in every if s.hostname == host}
    done = [s.id for s in foreign if _same(s) in copies]
    rewrite = [s.id for s in foreign if _same(s) not in copies]
    try:
        restic.rewrite_host(rewrite, host)
        restic.forget_ids(done, prune=False)
    except ResticError as exc:
        if refuses_deletes(str(exc)):
            raise OperationFailed(f"adopt: {exc.message}", hint=APPEND_ONLY_HINT) from None
        raise
    log.info("adopted %d snapshots under host %s", len(foreign), host)
    return result
