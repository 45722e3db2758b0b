"""notify's migrations: the learner mail's table, then the employer feed's (in the order a
deployed database applied them)."""

from __future__ import annotations

from microcred_notify.employer_feed.models import EMPLOYER_TABLES, keep_view_documents_in_row
from microcred_notify.learner_mail.models import (
    Notification,
    add_wallet_links,
    index_only_pending_mail,
)
from microcred_shared.db import (
    SHARED_TABLES,
    add_inbox_digest,
    add_outbox_shard,
    create_tables,
    table_of,
)

MIGRATIONS = [
    create_tables([*SHARED_TABLES, table_of(Notification)]),
    create_tables(EMPLOYER_TABLES),  # 2: the employer feed
    add_inbox_digest,  # 3: conflicting duplicates are refused (issue 13)
    add_outbox_shard,  # 4: instances share publishing by shard (ADR 2)
    add_wallet_links,  # 5: the credential mail's "Add to wallet" (ADR 31)
    keep_view_documents_in_row,  # 6: the view's document as json text in its row (issue 12)
    index_only_pending_mail,  # 7: the due index holds the pending mail only (issue 12)
]
