"""The service's database: each context's tables, created in this order (a deployed
database must see the same two migrations whatever module a table lives in)."""

from __future__ import annotations

from microcred_assessment.access.models import KafkaPrincipal
from microcred_assessment.audit.models import AuditEntry
from microcred_assessment.results.models import (
    IngestedResult,
    ResultRecord,
    drop_unique_assessment_id,
    drop_unread_learner_index,
)
from microcred_shared import projection
from microcred_shared.auth import ApiKey
from microcred_shared.db import (
    SHARED_TABLES,
    add_inbox_digest,
    add_outbox_shard,
    create_tables,
    table_of,
)

MIGRATIONS = [
    create_tables([*SHARED_TABLES, table_of(ResultRecord), table_of(ApiKey)]),
    create_tables([*projection.TABLES, table_of(AuditEntry), table_of(KafkaPrincipal)]),
    add_inbox_digest,  # 3: conflicting duplicates are refused (issue 13)
    create_tables([table_of(IngestedResult)]),  # 4: HTTP ingest's ledger (issue 12)
    add_outbox_shard,  # 5: instances share publishing by shard (ADR 2)
    drop_unique_assessment_id,  # 6: one unique index on results (ADR 40)
    drop_unread_learner_index,  # 7: no index nobody reads on results (issue 12)
]
