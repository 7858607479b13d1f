from collections.abc import Iterable, Iterator


def chunked(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    """Consecutive lists of at most `size` ids (as ints), for one transaction each."""
    chunk: list[int] = []
    for i in ids:
        chunk.append(int(i))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
