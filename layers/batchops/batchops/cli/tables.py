"""Readable text for API answers: what `batchops jobs` prints without --xml."""

from __future__ import annotations

from lxml import etree


def job_id(root: etree._Element) -> str:
    return root.findtext("JobId") or ""


def describe(root: etree._Element) -> str:
    job = root.find("Job")
    if job is None:
        return ""
    progress = job.find("ProgressSummary")
    operation = job.find("Operation")
    failures = [
        f"{f.findtext('FailureCode') or ''}: {f.findtext('FailureReason') or ''}"
        for f in job.iterfind("FailureReasons/JobFailure")
    ]
    rows = [
        ("JobId", job.findtext("JobId")),
        ("Status", job.findtext("Status")),
        ("StatusUpdateReason", job.findtext("StatusUpdateReason")),
        ("Priority", job.findtext("Priority")),
        ("Operation", operation[0].tag if operation is not None and len(operation) else ""),
        ("Description", job.findtext("Description")),
        ("ConfirmationRequired", job.findtext("ConfirmationRequired")),
        ("Tasks", _tasks(progress)),
        ("Manifest", job.findtext("Manifest/Location/ObjectArn")),
        ("ManifestETag", job.findtext("Manifest/Location/ETag")),
        ("ManifestFormat", job.findtext("Manifest/Spec/Format")),
        ("Report", _report(job)),
        ("RoleArn", job.findtext("RoleArn")),
        ("CreationTime", job.findtext("CreationTime")),
        ("TerminationDate", job.findtext("TerminationDate")),
        ("FailureReasons", "; ".join(failures)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows if value)


def job_list(root: etree._Element) -> str:
    header = ("JobId", "Status", "Priority", "Operation", "Tasks", "CreationTime", "Description")
    rows = [
        (
            m.findtext("JobId") or "",
            m.findtext("Status") or "",
            m.findtext("Priority") or "",
            m.findtext("Operation") or "",
            _tasks(m.find("ProgressSummary")),
            m.findtext("CreationTime") or "",
            m.findtext("Description") or "",
        )
        for m in root.iterfind("Jobs/member")
    ]
    if not rows:
        return "no jobs"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    token = root.findtext("NextToken")
    if token:
        lines.append(f"(more: --next-token {token})")
    return "\n".join(lines)


def priority(root: etree._Element) -> str:
    return f"{root.findtext('JobId')}  Priority {root.findtext('Priority')}"


def status(root: etree._Element) -> str:
    reason = root.findtext("StatusUpdateReason")
    return f"{root.findtext('JobId')}  {root.findtext('Status')}" + (f"  ({reason})" if reason else "")


def _tasks(progress: etree._Element | None) -> str:
    if progress is None:
        return ""
    return (
        f"{progress.findtext('NumberOfTasksSucceeded') or 0} succeeded, "
        f"{progress.findtext('NumberOfTasksFailed') or 0} failed, "
        f"{progress.findtext('TotalNumberOfTasks') or 0} total"
    )


def _report(job: etree._Element) -> str:
    if (job.findtext("Report/Enabled") or "").lower() != "true":
        return "disabled"
    prefix = job.findtext("Report/Prefix")
    where = job.findtext("Report/Bucket") or ""
    return f"{where} prefix {prefix!r} ({job.findtext('Report/ReportScope')})" if prefix else where
