"""MSB-first bit packing with Exp-Golomb codes, for the stream's header and the latent section's fields."""

from __future__ import annotations

from .errors import StreamError


class BitWriter:
    def __init__(self):
        self.bits: list[int] = []

    def write(self, value: int, n: int) -> None:
        if n < 0 or value < 0 or value >= (1 << n) and n > 0 or (n == 0 and value != 0):
            raise ValueError(f"{value} does not fit in {n} bits")
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def write_eg(self, value: int, k: int = 0) -> None:
        """Exp-Golomb of order k: values < 2^k cost k + 1 bits, doubling ranges cost 2 more each."""
        if value < 0:
            raise ValueError("Exp-Golomb codes non-negative integers")
        v = (value >> k) + 1
        n = v.bit_length()
        self.write(0, n - 1)
        self.write(v, n)
        self.write(value & ((1 << k) - 1), k)

    def __len__(self) -> int:
        return len(self.bits)

    def to_bytes(self) -> bytes:
        """Pad with zero bits to a whole byte (the reader checks the padding is zero)."""
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


class BitReader:
    def __init__(self, data: bytes, what: str = "stream"):
        self.data = data
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return 8 * len(self.data) - self.pos

    def read(self, n: int) -> int:
        if n > self.remaining:
            raise StreamError(f"{self.what} is truncated")
        v = 0
        for _ in range(n):
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def read_eg(self, k: int = 0, max_value: int = 1 << 32) -> int:
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
            if zeros > 32:
                raise StreamError(f"{self.what}: malformed Exp-Golomb code")
        v = ((1 << zeros) | self.read(zeros)) - 1
        value = (v << k) | self.read(k)
        if value > max_value:
            raise StreamError(f"{self.what}: value {value} exceeds its limit {max_value}")
        return value

    def align(self) -> int:
        """Skip to the next byte; the padding bits must be zero. Returns the byte offset."""
        pad = -self.pos % 8
        if pad and self.read(pad) != 0:
            raise StreamError(f"{self.what}: non-zero padding bits")
        return self.pos // 8


def zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def unzigzag(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


def ceil_div(n: int, k: int) -> int:
    """⌈n / k⌉ for integers (k > 0): how many k-sized blocks, cells or bytes cover n."""
    return -(-n // k)


def leb128(n: int) -> bytes:
    """``n`` ≥ 0 as unsigned LEB128: 7 bits a byte, least significant first, the high bit set on all but the
    last (AV1's OBU sizes, and stream v4's record lengths)."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)
