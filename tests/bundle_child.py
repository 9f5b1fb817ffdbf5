"""Run the unzipped Lambda bundle as Lambda would: the API and SQS handlers, nothing else.

Started by test_lambda_package under Python 3.12 in isolated mode (no site
packages, no project on the path), so every import comes from the bundle:
``python3.12 -I bundle_child.py BUNDLE_DIR PAGE_URL``. It saves the page's
link through the API handler, runs one processor cycle through the SQS
handler and prints the link the API then answers with, as JSON.
"""

import json
import sys
import time

sys.path.insert(0, sys.argv[1])
page_url = sys.argv[2]

import app  # noqa: E402  (from the bundle)
from chalicelib.auth import issue_token  # noqa: E402


class Context:
    """The parts of a Lambda context the handlers may read."""

    function_name = "bundle-test"
    aws_request_id = "bundle-test"

    def get_remaining_time_in_millis(self):
        return 60_000


def api(method, path, token, body=None, path_parameters=None):
    event = {
        "resource": path, "path": path, "httpMethod": method,
        "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
        "multiValueHeaders": {}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": path_parameters,
        "stageVariables": None, "requestContext": {"resourcePath": path, "httpMethod": method},
        "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
    }
    answer = app.app(event, Context())
    return answer["statusCode"], json.loads(answer["body"])


now = time.time()
token = issue_token(app.config.load().jwt_secret, sub="t", org="acme", lifetime_seconds=600, now=now)
at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
status, pushed = api("POST", "/v1/sync/push", token, {
    "batch_id": "b1", "client_id": "c1",
    "events": [{"id": "e1", "name": "v1.LinkCreated", "at": at,
                "args": {"id": "link-1", "url": page_url, "createdAt": at}}],
})
assert status == 200, pushed
cycle = app.process_org_messages(
    {"Records": [{"messageId": "m1", "body": json.dumps({"org": "acme"}),
                  "eventSource": "aws:sqs"}]},
    Context(),
)
status, link = api("GET", "/v1/links/{link_id}", token, path_parameters={"link_id": "link-1"})
print(json.dumps({"python": list(sys.version_info[:2]), "cycle": cycle, "status": status,
                  "link": link, "app_file": app.__file__}))
