"""`Cache-Control` request headers: any header is read, and can only tighten the body's controls."""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.ingress.cache_control import MAX_DELTA_SECONDS, merge_cache_control
from schemas import CacheControl

# Digits of every script, not only ASCII: str.isdigit() says yes to all of them.
unicode_digits = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6)
# RFC 9111 1.2.2: a delta-seconds past 2**31 means 2**31, however many digits it has.
CAP = MAX_DELTA_SECONDS
ascii_seconds = st.integers(0, 10**12).map(str) | st.integers(4000, 6000).map(lambda n: "9" * n)
values = st.one_of(ascii_seconds, unicode_digits, st.text(max_size=12))
names = st.sampled_from(["no-cache", "no-store", "max-age", "NO-CACHE", "Max-Age", "private"])


@st.composite
def headers(draw: st.DrawFn) -> str:
    """A header of directives, spelled with the spacing, case and quoting clients use."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(names | st.text(max_size=8))
        if draw(st.booleans()):
            value = draw(values)
            quoted = draw(st.booleans())
            name = f"{name}={chr(34) + value + chr(34) if quoted else value}"
        parts.append(draw(st.sampled_from(["", " ", "  "])) + name)
    return ",".join(parts)


bodies = st.builds(
    CacheControl,
    ttl=st.none() | st.integers(1, 3600),
    no_cache=st.booleans(),
    no_store=st.booleans(),
    max_age=st.none() | st.integers(0, 10**9),
)


def _ascii_max_ages(header: str) -> list[int]:
    ages = []
    for directive in header.split(","):
        name, _, value = directive.strip().partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "max-age" and value.isascii() and value.isdigit():
            ages.append(CAP if len(value) > 10 else min(int(value), CAP))
    return ages


@settings(max_examples=300)  # cheap, and the odd spellings are rare among the headers
@given(header=headers() | st.text(max_size=64), body=bodies)
# Found by this property: each was a ValueError (a 500) before.
@example(header="max-age=\u00b2", body=CacheControl())
@example(header="max-age=" + "9" * 5000, body=CacheControl(max_age=3))
def test_any_header_only_tightens_the_body(header: str, body: CacheControl) -> None:
    merged = merge_cache_control(header, body)

    assert merged.ttl == body.ttl
    assert merged.no_cache >= body.no_cache
    assert merged.no_store >= body.no_store
    given_ages = _ascii_max_ages(header) + ([] if body.max_age is None else [body.max_age])
    assert merged.max_age == (min(given_ages) if given_ages else None)


@given(body=bodies, seconds=st.integers(0, 10**12), spaces=st.sampled_from(["", " ", "\t"]))
def test_a_directive_reads_the_same_however_it_is_spelled(
    body: CacheControl, seconds: int, spaces: str
) -> None:
    plain = merge_cache_control(f"no-cache, max-age={seconds}", body)
    spelled = merge_cache_control(f'{spaces}MAX-AGE={spaces}"{seconds}"{spaces},No-Cache', body)
    assert plain == spelled
