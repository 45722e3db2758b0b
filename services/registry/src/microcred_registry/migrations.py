"""The registry's schema, in the order it was built: a deployed database has applied these
steps by number, so they never change and new ones are only appended."""

from __future__ import annotations

from microcred_registry.credentials.models import (
    CredentialRecord,
    IssuerRecord,
    StatusEvent,
    StatusListRecord,
    index_credentials_for_their_reads,
    index_definition_versions,
    keep_credential_rows_whole,
    keep_documents_in_row,
)
from microcred_registry.delivery.models import WalletExchange
from microcred_registry.employers.models import EmployerEntry, EmployerKey
from microcred_registry.ob_api.models import OB_API_TABLES, index_credential_ids
from microcred_registry.oid4vci.models import OID4VCI_TABLES
from microcred_registry.wallet.models import LEARNER_TABLES, add_shared_since
from microcred_shared.auth import ApiKey
from microcred_shared.db import (
    SHARED_TABLES,
    Migration,
    add_inbox_digest,
    add_outbox_shard,
    create_tables,
    table_of,
)
from microcred_shared.projection import CatalogProvider

MIGRATIONS: list[Migration] = [
    create_tables([*SHARED_TABLES, table_of(CredentialRecord), table_of(IssuerRecord),
                   table_of(StatusListRecord), table_of(StatusEvent)]),
    # 2: learner sign-in, sessions, visibility, share links, profiles.
    create_tables(LEARNER_TABLES),
    # 3: when each direct share with an employer began.
    add_shared_since,
    # 4: the employer directory (names and status, from notify).
    create_tables([table_of(EmployerEntry)]),
    # 5: providers' and employers' API keys (digests), projected from assessment and
    # notify: issuers read their credentials, employers what learners share with them.
    create_tables([table_of(ApiKey), table_of(EmployerKey)]),
    # 6: conflicting duplicates are refused (issue 13).
    add_inbox_digest,
    # 7: credentials by definition version (the drawn badge of a version).
    index_definition_versions,
    # 8: the providers, projected from assessment: the trust list (ADR 26).
    create_tables([table_of(CatalogProvider)]),
    # 9: OpenID4VCI offers (pre-authorized codes, access tokens) and nonces (ADR 28).
    create_tables([table_of(t) for t in OID4VCI_TABLES]),
    # 10: wallet exchanges, "Add to wallet" (ADR 27).
    create_tables([table_of(WalletExchange)]),
    # 11: the Open Badges 3.0 API: clients, grants, tokens, the backpack, profiles (ADR 30).
    create_tables([table_of(t) for t in OB_API_TABLES]),
    # 12: a credential found by its own `id` (upsertCredential: is it one of ours?).
    index_credential_ids,
    # 13: instances share publishing from the outbox by shard (ADR 2).
    add_outbox_shard,
    # 14: a credential's document is its JSON text, kept in its row (one page per read).
    keep_documents_in_row,
    # 15: its other columns kept in its row too (no TOAST row per short value, issue 12).
    keep_credential_rows_whole,
    # 16: only the indexes a query reads; a custom document id in a column of its own.
    index_credentials_for_their_reads,
]
