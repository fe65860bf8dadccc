"""The Python workload's computation, with mpmath installed by pip: digits
of pi, e and zeta(3) at 1000 decimal places, and a numerical integral,
which hold on every architecture (mpmath is pure Python)."""
import platform
import sys

import mpmath
from mpmath import mp

mp.dps = 1000
print("machine:", platform.machine())
print("python:", "%d.%d" % sys.version_info[:2], "mpmath:", mpmath.__version__)
# The last ten of the first thousand decimals (mp.dps keeps guard digits).
print("pi[991:1001]:", mp.nstr(mp.pi, 1001)[992:1002])
print("e[991:1001]:", mp.nstr(mp.e, 1001)[992:1002])
print("zeta(3):", mp.nstr(mp.zeta(3), 30))
mp.dps = 30
print("integral of exp(-x^2) over R, squared:", mp.nstr(mp.quad(lambda x: mp.exp(-x * x), [-mp.inf, mp.inf]) ** 2, 25))
