"""What the scheduler runs, and how often: the promises the README makes about relays,
reconciliation and overdue settlement hold only if these registrations do."""

from __future__ import annotations

from workers.runner import scheduler


def test_the_scheduler_registers_every_recurring_job(settings):
    jobs = {job.func_name: job for job in scheduler(settings).get_jobs()}
    assert set(jobs) == {
        "workers.relay.relay_pending",
        "workers.postback.relay_postbacks",
        "workers.milestone_summary.relay_summaries",
        "workers.reconcile.reconcile_all",
        "workers.jobs.settle_overdue_job",
        "workers.report_schedule.schedule_reports",
    }
    # A killed worker's job is back on the queue within a minute: stale after 30 s, relay
    # every 20 s (issue 8).
    assert jobs["workers.relay.relay_pending"].interval == 20
    assert jobs["workers.postback.relay_postbacks"].interval == 60
    assert jobs["workers.milestone_summary.relay_summaries"].interval == 60
    assert jobs["workers.reconcile.reconcile_all"].cron == "17 * * * *"
    assert jobs["workers.jobs.settle_overdue_job"].cron == "*/15 * * * *"
    # Monthly reports: due ones built and sent within 15 minutes of their hour (issue 10).
    assert jobs["workers.report_schedule.schedule_reports"].cron == "*/15 * * * *"
    assert {job.queue_name for job in jobs.values()} == {settings.queue_name}
