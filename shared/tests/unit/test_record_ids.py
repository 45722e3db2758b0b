"""The ids made per record (issue 12, wave 18: `contract.ids`) are the ones the `uuid`
module made: a learner's key, an assessment's id and every event's ce_id are stored,
published and compared across services and versions, so a name-based id must be the same
value for the same name, and a random one the same kind of text."""

from __future__ import annotations

import os
import pickle
import random
import threading
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from microcred_shared.contract import ids
from microcred_shared.contract.events import NAMESPACE, learner_key, normalize_email

# Names as they come: any text, including what the backbone never builds, and the shapes
# it does (prefixes, e-mail addresses, provider and result ids).
_names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=2000)
@given(_names)
def test_a_name_based_id_is_uuid5s_value_text_and_type(name: str) -> None:
    for namespace in (NAMESPACE, uuid.NAMESPACE_URL, uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
        want = uuid.uuid5(namespace, name)
        got = ids.name_id(namespace.bytes, name)
        assert type(got) is uuid.UUID
        assert got == want and got.int == want.int and hash(got) == hash(want)
        assert str(got) == str(want) and got.hex == want.hex and got.bytes == want.bytes
        assert (got.version, got.variant, got.is_safe) == (5, uuid.RFC_4122, want.is_safe)
        assert pickle.loads(pickle.dumps(got)) == want
        assert ids.name_id_text(namespace.bytes, name) == str(want)


def test_a_name_based_id_of_many_generated_names_is_uuid5s() -> None:
    rng = random.Random(18)
    names = ["", "learner:", "assessment:p:r", "é中😀", "a" * 10_000]
    names += [f"assessment:provider-{rng.randrange(10**6)}:{uuid.UUID(int=rng.getrandbits(128))}"
              for _ in range(20_000)]
    names += ["".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(40)))
              for _ in range(5_000)]
    for name in names:
        assert ids.name_id(NAMESPACE.bytes, name) == uuid.uuid5(NAMESPACE, name)
        assert ids.name_id_text(NAMESPACE.bytes, name) == str(uuid.uuid5(NAMESPACE, name))


@settings(max_examples=500)
@given(st.emails() | _names)
def test_a_learner_key_is_what_it_always_was(email: str) -> None:
    """ADR 3: the key is uuid5 of the normalised address; keys stored by every version
    must still match the addresses they were made from."""
    try:
        normal = normalize_email(email)
    except Exception:  # what normalising refuses is refused either way
        return
    assert learner_key(email) == str(uuid.uuid5(NAMESPACE, "learner:" + normal))


def test_a_name_with_a_lone_surrogate_is_refused_as_uuid5_refuses_it() -> None:
    for make in (lambda: uuid.uuid5(NAMESPACE, "a\udc80"),
                 lambda: ids.name_id(NAMESPACE.bytes, "a\udc80"),
                 lambda: ids.name_id_text(NAMESPACE.bytes, "a\udc80")):
        try:
            make()
        except UnicodeEncodeError:
            continue
        raise AssertionError("a lone surrogate was encoded")


def test_a_random_id_reads_as_a_version_4_uuid_written_as_uuid4_writes_it() -> None:
    made = [ids.random_id() for _ in range(100_000)]
    assert len(set(made)) == len(made)
    for text in made[:20_000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower case, 8-4-4-4-12
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
    # 122 random bits: every hex digit that is not fixed takes every value
    fixed = {8, 13, 14, 18, 19, 23}  # dashes, the version digit, the variant digit
    for position in set(range(36)) - fixed:
        assert {t[position] for t in made[:5_000]} == set("0123456789abcdef"), position
    assert {t[19] for t in made[:5_000]} == set("89ab")


def test_threads_never_get_the_same_random_id() -> None:
    made: list[list[str]] = [[] for _ in range(8)]

    def make(out: list[str]) -> None:
        out.extend(ids.random_id() for _ in range(20_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [t for out in made for t in out]
    assert len(set(every)) == len(every) == 160_000


def test_a_forked_child_does_not_repeat_its_parents_random_ids() -> None:
    ids.random_id()  # the parent holds random bytes it has not used yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's side
        try:
            os.write(write, " ".join(ids.random_id() for _ in range(300)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = pipe.read().split()
    os.waitpid(child, 0)
    ours = [ids.random_id() for _ in range(300)]
    assert len(theirs) == 300 and not set(theirs) & set(ours)
