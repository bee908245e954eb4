"""`/operator` (the admin token only; to anyone else it is the same 404 as a page that does not
exist): recent webhook deliveries with their status, failed deliveries and RQ jobs with their
errors, the queue's depth; and a failed delivery put back on the queue from the page.

The retry is relay's own path (`workers.enqueue`): the row moves to `queued` (one more attempt)
and the same job id, `delivery-<id>`, goes on the queue; `process_delivery` claims the row
first, so a retry that races another one processes it once.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from trackrecord.models import Delivery, DeliveryStatus
from webhook_app import pages
from webhook_app.auth import ADMIN
from webhook_app.errors import Rejected
from webhook_app.services import services
from workers.enqueue import enqueue_delivery, job_id, mark_queued

bp = Blueprint("operator", __name__, url_prefix="/operator")
RECENT = 50
FAILED_JOBS = 20


def _admin() -> None:
    if pages.viewer() is not ADMIN:
        raise Rejected(404, "not_found", "There is no such page.")


@bp.get("")
def operator():
    _admin()
    with services().sessions() as session:
        recent = session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(RECENT)).all()
        failed = session.scalars(
            select(Delivery)
            .where(Delivery.status == DeliveryStatus.FAILED)
            .order_by(Delivery.id.desc())
            .limit(RECENT)
        ).all()
        by_status = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
        session.expunge_all()
    return render_template(
        "operator.html",
        admin=True,
        recent=recent,
        failed=failed,
        by_status={s: by_status.get(s, 0) for s in DeliveryStatus.ALL},
        queue=_queue_state(),
    )


def _queue_state() -> dict:
    """The queue's depth and its failed jobs, or the reason Redis could not say."""
    try:
        queue = services().queue()
        registry = FailedJobRegistry(queue=queue)
        ids = registry.get_job_ids(0, FAILED_JOBS - 1)
        jobs = [j for j in Job.fetch_many(ids, connection=queue.connection) if j is not None]
        return {
            "name": queue.name,
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).count,
            "scheduled": ScheduledJobRegistry(queue=queue).count,
            "failed": registry.count,
            "failed_jobs": [
                {
                    "id": j.id,
                    "description": j.description,
                    "ended_at": j.ended_at,
                    "error": _error_of(j),
                }
                for j in jobs
            ],
            "error": None,
        }
    except Exception as exc:  # Redis down or unreachable: the page still shows the database
        return {"name": services().settings.queue_name, "error": type(exc).__name__}


def _error_of(job: Job) -> str:
    """The last line of the job's traceback: the exception and its message."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@bp.post("/deliveries/<int:row_id>/retry")
def retry(row_id: int):
    _admin()
    with services().sessions() as session, session.begin():
        status = session.scalar(
            select(Delivery.status).where(Delivery.id == row_id).with_for_update()
        )
        if status != DeliveryStatus.FAILED:
            raise Rejected(409, "not_failed", f"Delivery {row_id} is not a failed delivery.")
        mark_queued(session, row_id, DeliveryStatus.FAILED)
    try:
        queue = services().queue()
        # The job's last failure stays listed under its id otherwise, beside the new run.
        FailedJobRegistry(queue=queue).remove(job_id(row_id))
        enqueue_delivery(queue, row_id)
    except Exception:
        # The row is `queued` in the database: relay enqueues it once Redis answers again.
        flash(f"Delivery {row_id} is marked queued; Redis did not answer, relay will enqueue it.")
    else:
        flash(f"Delivery {row_id} is back on the queue.")
    return redirect(url_for("operator.operator"), code=303)


pages.install(bp)
