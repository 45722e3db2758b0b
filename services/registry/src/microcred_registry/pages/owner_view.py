"""What the holder of a credential sees on its page beside what everyone sees: who can see
it, QR codes of the URLs they may share (the public page; a share link when it is made: the
token is kept only as its digest, so it cannot be drawn later), its active share links (each
with a way to revoke it), and the employers it is shared with directly, by name, since when,
with the approved employers it could still be shared with."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_registry.employers import handlers as employer_directory
from microcred_registry.employers.domain import share_row
from microcred_registry.pages import qr
from microcred_registry.pages.i18n import long_date, translator
from microcred_registry.wallet import sharing
from microcred_registry.wallet.domain import link_json, links_work


def target(url: str, t: Any) -> dict[str, Any]:
    return {"url": url, "qr": qr.inline(url, t("qr.label", url=url)),
            "download": url + "/qr.svg"}


async def owner_view(conn: AsyncConnection, row: Any, base: str, lang: str, *,
                     new_link: str | None = None, notice: str | None = None) -> dict[str, Any]:
    t = translator(lang)
    cid = row.credential_id
    visibility, _ = await sharing.visibility_of(conn, cid)
    active = [link for link in await sharing.links_of(conn, cid)
              if link_json(link, base)["state"] == "active"]
    shares = await sharing.employer_shares(conn, cid)
    named = await employer_directory.entries(conn, [e for e, _ in shares])
    return {
        "id": str(cid), "visibility": visibility, "links_work": links_work(visibility),
        "public": target(f"{base}/v1/credentials/{cid}", t) if visibility == "public" else None,
        "new_link": target(new_link, t) if new_link else None,
        "links": [{"id": str(link.id), "created": long_date(link.created_at, lang),
                   "expires": long_date(link.expires_at, lang)} for link in active],
        "employers": [share_row(e, long_date(since, lang), named.get(e))
                      for e, since in shares],
        "can_share_with": [{"id": r.employer_id, "name": r.organisation}
                           for r in await employer_directory.shareable_employers(conn)
                           if r.employer_id not in {e for e, _ in shares}],
        "notice": notice,
    }

