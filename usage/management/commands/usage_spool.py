"""`manage.py usage_spool [--recover]`: the usage events waiting in this host's spool files (not
yet in the database), per file, and the events the database refused; `--recover` writes the
spool files of stopped processes now, and meters their forwarded requests that have no outcome
as `interrupted` (`quotas.jobs.recover_usage`)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from quotas.jobs import recover_usage
from usage.recorder import DatabaseUnavailable, recover, spool_dir, spool_files


class Command(BaseCommand):
    help = "Show the usage events waiting in the spool files under AIGW_DATA_DIR/usage-spool."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--recover", action="store_true", help="Write the spool files of stopped processes to the database now."
        )

    def handle(self, *args, recover: bool = False, **options) -> None:
        if recover:
            self._recover()
        files = spool_files()
        for file in files:
            state = "running" if file.alive else "stopped"
            oldest = file.oldest.isoformat() if file.oldest else "-"
            self.stdout.write(f"{file.path.name}  pid {file.pid} ({state})  {file.events} events  oldest {oldest}")
        waiting = sum(file.events for file in files)
        stopped = sum(file.events for file in files if not file.alive)
        rejected_dir = spool_dir() / "rejected"
        rejected = sum(
            len([line for line in path.read_bytes().splitlines() if line.strip()])
            for path in (rejected_dir.glob("*.jsonl") if rejected_dir.exists() else [])
        )
        self.stdout.write(
            f"{waiting} usage events in {len(files)} spool files ({stopped} of stopped processes); "
            f"{rejected} refused by the database, kept in {rejected_dir}"
        )

    def _recover(self) -> None:
        try:
            written = recover()
            interrupted = recover_usage(timezone.now())
        except DatabaseUnavailable as error:
            raise CommandError(f"the database cannot be reached; nothing was lost, try again: {error}") from None
        self.stdout.write(f"wrote {written} usage events of stopped processes")
        self.stdout.write(f"metered {interrupted} of their forwarded requests with no outcome as interrupted")
