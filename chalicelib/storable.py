"""What a value must be for linklog to keep it: the rules push validation,
the processor's events and the materializer share.

SQLite's INTEGER is signed 64-bit, so a larger integer cannot be stored.
UTF-8 (and so SQLite's text and the log's JSON) cannot spell a lone
surrogate, although JSON's ``\\ud800`` escape can. Ids travel in processor
events, which refuse control characters.
"""

import re

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
LONE_SURROGATES = re.compile("[\ud800-\udfff]")
