"""The Lambda deployment package: built for the Lambda runtime, then audited.

``build`` installs the runtime dependencies as wheels for Lambda's Python
and platform (never the Python that runs it) and hands them to ``chalice
package`` as its ``vendor/`` directory; ``audit`` inspects the zip it made
and says everything that would fail on Lambda. ``python -m lambda_package``
(``make package``) does both and fails loudly when either finds a problem.
"""

# Lambda's runtime (python3.12, Amazon Linux 2023): glibc 2.34.
LAMBDA_PYTHON = (3, 12)
MAX_GLIBC = (2, 34)
# Lambda's architecture names and the machine names in wheel tags.
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}
