"""``manage.py train_models [--tenant slug]``: train in the foreground, with progress."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.jobs import DurableJob
from apps.modeling.models import TrainingRun
from apps.modeling.selectors import describe_decision
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = ("Train each tenant's model now, in this process (a TrainingRun row records it "
            "as the worker would). Prints progress and the new version's metrics; exits "
            "non-zero if any training failed.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: every active tenant).")

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.modeling.services import execute_training_run

        tenants = Tenant.objects.filter(is_active=True).order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No active tenant '{options['tenant']}'.")
        failures = []
        for tenant in tenants:
            self.stdout.write(f"== {tenant.slug}")
            # Not enqueued: this process runs it. The sweeper would pick it up only if this
            # process died and the row went stale, which is what should happen then.
            run = TrainingRun.objects.create(tenant=tenant, reason=TrainingRun.Reason.COMMAND)
            version = execute_training_run(tenant_id=tenant.pk, run_id=run.pk,
                                           echo=self.stdout.write)
            run.refresh_from_db()
            if version is None or run.status != DurableJob.Status.SUCCEEDED:
                failures.append(f"{tenant.slug}: {run.last_error or run.status}")
                self.stderr.write(f"training failed: {run.last_error}")
                continue
            metrics = version.metrics.get("model", {})
            baseline = version.metrics.get("popularity", {})
            self.stdout.write(
                f"v{version.number} ({version.algorithm}, {version.status}): " + ", ".join(
                    f"{k}={metrics[k]:.4f} (popularity {baseline.get(k, 0):.4f})"
                    for k in ("ndcg@10", "precision@10", "recall@20", "map@10",
                              "coverage@10") if k in metrics))
            self.stdout.write(f"  {version.activation_note}")
            decision = describe_decision(version.activation_decision)
            if decision:
                self.stdout.write(f"  champion/challenger: {decision}")
        if failures:
            raise CommandError("training failed for " + "; ".join(failures))
