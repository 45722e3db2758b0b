"""What the holder of a credential sees on its page beside what everyone sees: who can see
it, QR codes of the URLs they may share (the public page; a share link when it is made: the
token is kept only as its digest, so it cannot be drawn later), and the employers it is
shared with directly, since when."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from microcred_registry import qr, sharing
from microcred_registry.i18n import long_date, translator


def target(url: str, t: Any) -> dict[str, Any]:
    return {"url": url, "qr": qr.inline(url, t("qr.label", url=url)),
            "download": url + "/qr.svg"}


async def owner_view(conn: AsyncConnection, row: Any, base: str, lang: str, *,
                     new_link: str | None = None, notice: str | None = None) -> dict[str, Any]:
    t = translator(lang)
    cid = row.credential_id
    visibility, _ = await sharing.visibility_of(conn, cid)
    active = [link for link in await sharing.links_of(conn, cid)
              if sharing.link_json(link, base)["state"] == "active"]
    return {
        "id": str(cid), "visibility": visibility, "links_work": sharing.links_work(visibility),
        "public": target(f"{base}/v1/credentials/{cid}", t) if visibility == "public" else None,
        "new_link": target(new_link, t) if new_link else None,
        "links": [{"created": long_date(link.created_at, lang),
                   "expires": long_date(link.expires_at, lang)} for link in active],
        "employers": [{"id": employer, "since": long_date(since, lang)}
                      for employer, since in await sharing.employer_shares(conn, cid)],
        "notice": notice,
    }
