"""Building a site archive: one zip of every case book of a site, plus an index.

Memory stays flat in the number of cases: the cases are read in chunks (`.iterator()`), each case
book is rendered, written into the zip and dropped before the next, and the index rows go to a
temporary file that is copied into the zip at the end. The zip is written beside its final name
and renamed when complete, so a download never sees half an archive.
"""

import csv
import hashlib
import io
import logging
import os
import tempfile
import time
import zipfile

from django.utils import timezone, translation

from exchange.safe import safe_row
from registry.models import CrfStatus, Patient

from .models import SiteArchive

log = logging.getLogger(__name__)
CHUNK = 200  # cases read per database round trip
BEAT_EVERY_S = 2.0  # progress and heartbeat written at most this often
INDEX_COLUMNS = [
    "study_id",
    "file",
    "case_complete",
    "signed",
    "crf_statuses",
    "open_queries",
    "audit_rows",
    "content_sha256",
    "pdf_sha256",
    "pdf_bytes",
]
README = """Case books of site {code} ({name})

Built {built} by {who} from the Blinatumomab R/R ALL registry: {n} case book(s), one PDF per case
({code}-NNN.pdf), and index.csv (one row per case: CRF statuses, signature, open queries, number
of audit trail rows, the SHA-256 of each book's content, as printed in its page header, and of
its PDF file).

De-identified as the registry is: study IDs only, no names or hospital numbers.
"""


def _zip_info(name, when):
    info = zipfile.ZipInfo(name, date_time=timezone.localtime(when).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o640 << 16
    return info


def _index_row(patient, name, book, data) -> list:
    statuses = {c.crf: c.status for c in book.crfs}
    valid = [s for s in book.signatures if not s[3]]
    return [
        patient.study_id,
        name,
        "yes" if book.case_complete else "no",
        f"{valid[-1][0]} {valid[-1][1]}" if valid else "",
        "; ".join(f"{crf}: {statuses[crf]}" for crf, _label in CrfStatus.CRF_CHOICES),
        sum(1 for q in book.queries if q.status != "Closed"),
        len(book.audit),
        book.sha256,
        hashlib.sha256(data).hexdigest(),
        len(data),
    ]


def _file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(archive: SiteArchive) -> SiteArchive:
    """Write the archive's zip (its status, progress and heartbeat kept on the row).

    In English whatever the language of the page that asked for it: a case book is the study's
    record, and the same data must give the same content hash (README "Languages")."""
    with translation.override("en"):
        return _build(archive)


def _build(archive: SiteArchive) -> SiteArchive:
    from . import pdf  # ReportLab where a book is drawn, not at every process start

    rows = SiteArchive.objects.filter(pk=archive.pk)
    site = archive.institution
    cases = Patient.objects.filter(institution=site).order_by("study_id")
    started = timezone.now()
    rows.update(
        status=SiteArchive.RUNNING,
        started_at=started,
        heartbeat_at=started,
        cases_total=cases.count(),
        cases_done=0,
        error="",
    )
    final = archive.path
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    try:
        done, last_beat = 0, time.monotonic()
        with (
            zipfile.ZipFile(part, "w", allowZip64=True) as zf,
            tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as index,
        ):
            writer = csv.writer(index)
            writer.writerow(INDEX_COLUMNS)
            for patient in cases.select_related("institution").iterator(chunk_size=CHUNK):
                data, book = pdf.case_pdf(patient)
                name = f"{patient.study_id}.pdf"
                zf.writestr(_zip_info(name, started), data)
                writer.writerow(safe_row(_index_row(patient, name, book, data)))
                done += 1
                if time.monotonic() - last_beat >= BEAT_EVERY_S:
                    rows.update(cases_done=done, heartbeat_at=timezone.now())
                    last_beat = time.monotonic()
            index.seek(0)
            with zf.open(_zip_info("index.csv", started), "w") as out:
                for line in index:
                    out.write(line.encode("utf-8"))
            who = archive.requested_by.get_username() if archive.requested_by else "system"
            readme = README.format(
                code=site.code,
                name=site.name,
                built=timezone.localtime(started).strftime("%Y-%m-%d %H:%M:%S %Z"),
                who=who,
                n=done,
            )
            zf.writestr(_zip_info("README.txt", started), readme)
        os.replace(part, final)
        rows.update(
            status=SiteArchive.SUCCEEDED,
            cases_done=done,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            size_bytes=final.stat().st_size,
            sha256=_file_sha256(final),
        )
    except Exception as exc:  # recorded on the archive (the page shows it), never re-raised
        log.exception("site archive %s of %s failed", archive.pk, site.code)
        part.unlink(missing_ok=True)
        rows.update(
            status=SiteArchive.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
    archive.refresh_from_db()
    return archive


def index_rows(path) -> list[dict]:
    """The index of a built archive (tests, checks)."""
    with zipfile.ZipFile(path) as zf:
        return list(csv.DictReader(io.TextIOWrapper(zf.open("index.csv"), encoding="utf-8")))
