"""Celery tasks for serial-list imports: small, idempotent, by id; the ImportJob row says what is left to do."""

import logging

from celery import shared_task

from .code_issues import sweep_claim_code_issues
from .imports import TASK_TIME_LIMIT, import_validated_rows, sweep_import_jobs, validate_upload
from .models import ImportJob

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=TASK_TIME_LIMIT - 100, time_limit=TASK_TIME_LIMIT)
def validate_job_file(job_id):
    """Validate an uploaded file into the staging table (again, from the start, if a worker died)."""
    job = ImportJob.objects.select_related("device_model__claiming_method").filter(pk=job_id).first()
    if job is None or job.status not in {ImportJob.Status.PENDING, ImportJob.Status.VALIDATING}:
        logger.info("import job %s: nothing to validate", job_id)
        return
    validate_upload(job)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=TASK_TIME_LIMIT - 100, time_limit=TASK_TIME_LIMIT)
def import_job_rows(job_id):
    """Import a validated job's good rows in one transaction; a second delivery finds it done."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.info("import job %s is gone", job_id)
        return
    import_validated_rows(job)


@shared_task(acks_late=True, ignore_result=True)
def sweep_imports():
    """Periodic (beat): resume imports whose worker died, cancel those nobody decided on, destroy
    generated claim codes nobody downloaded in time."""
    resumed, cancelled = sweep_import_jobs()
    destroyed = sweep_claim_code_issues()
    logger.info("import sweep: %s resumed, %s cancelled, %s claim-code files destroyed", resumed, cancelled, destroyed)
