"""infra/template.json: valid, self-consistent, and merging with `chalice package`."""

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from chalicelib import batchmarkers, dueindex
from chalicelib.api_errors import STATUSES
from chalicelib.keys import lease_key, log_key, snapshot_key
from chalicelib.triggers import WALK_KEY

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.json"
# Resources `chalice package` generates that the fragment refers to or extends.
CHALICE_FUNCTIONS = {"APIHandler", "ProcessOrgMessages", "SweepOrgs"}
CHALICE_RESOURCES = CHALICE_FUNCTIONS | {"RestAPI"}
# Each function's own role and log group.
ROLES = {"APIHandler": "ApiRole", "ProcessOrgMessages": "ProcessorRole", "SweepOrgs": "SweepRole"}
LOG_GROUPS = {"APIHandler": "ApiLogGroup", "ProcessOrgMessages": "ProcessorLogGroup",
              "SweepOrgs": "SweepLogGroup"}


@pytest.fixture(scope="module")
def template():
    return json.loads(TEMPLATE.read_text())


def references(node):
    """Every logical name a Ref, Fn::GetAtt or Fn::Sub in ``node`` points at."""
    if isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                yield value
            elif key == "Fn::GetAtt":
                yield value[0] if isinstance(value, list) else value.split(".")[0]
            elif key == "Fn::Sub":
                text, local = value if isinstance(value, list) else (value, {})
                for part in text.split("${")[1:]:
                    name = part.split("}")[0].split(".")[0]
                    if name not in local:
                        yield name
                if isinstance(value, list):
                    yield from references(value[1])
            else:
                yield from references(value)


def test_every_reference_names_a_parameter_or_a_resource(template):
    known = set(template["Parameters"]) | set(template["Resources"]) | CHALICE_RESOURCES
    dangling = {
        name for name in references(template)
        if not name.startswith("AWS::") and name not in known
    }
    assert dangling == set()


def test_resources_without_a_type_only_extend_chalices_functions(template):
    extensions = {name for name, body in template["Resources"].items() if "Type" not in body}
    assert extensions == CHALICE_RESOURCES


def test_every_function_runs_on_python_3_12(template):
    runtimes = {name: template["Resources"][name]["Properties"]["Runtime"]
                for name in CHALICE_FUNCTIONS}
    assert runtimes == dict.fromkeys(CHALICE_FUNCTIONS, "python3.12")


def test_the_sqs_handler_takes_the_stacks_queue_by_its_arn(template):
    handler = template["Resources"]["ProcessOrgMessages"]
    event = handler["Properties"]["Events"]["ProcessOrgMessagesSqsEventSource"]["Properties"]
    assert event == {
        # Chalice builds an ARN from a name; this replaces it with the queue's own.
        "Queue": {"Fn::Sub": "${ProcessQueue.Arn}"},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "ProcessorConcurrency"}},
    }
    # No name kept equal by hand: CloudFormation names the queues.
    assert "DependsOn" not in handler
    assert "QueueName" not in template["Parameters"]
    for queue in ("ProcessQueue", "ProcessDeadLetterQueue"):
        assert "QueueName" not in template["Resources"][queue]["Properties"]


def test_the_queue_hides_a_message_six_times_longer_than_the_handler_runs(template):
    resources = template["Resources"]
    visibility = resources["ProcessQueue"]["Properties"]["VisibilityTimeout"]
    timeout = resources["ProcessOrgMessages"]["Properties"]["Timeout"]
    assert visibility >= 6 * timeout


def test_the_sweep_runs_one_at_a_time(template):
    assert template["Resources"]["SweepOrgs"]["Properties"]["ReservedConcurrentExecutions"] == 1


def test_the_log_and_its_queues_outlive_the_stack(template):
    resources = template["Resources"]
    for name in ("LinklogBucket", "ProcessQueue", "ProcessDeadLetterQueue"):
        assert resources[name]["DeletionPolicy"] == "Retain", name
        assert resources[name]["UpdateReplacePolicy"] == "Retain", name


def test_the_bucket_refuses_plain_http(template):
    policy = template["Resources"]["LinklogBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "LinklogBucket"}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${LinklogBucket}"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${LinklogBucket}/*"},
    ]


def test_every_function_logs_json_at_info_to_a_group_that_expires_and_is_traced(template):
    resources = template["Resources"]
    for function, group in LOG_GROUPS.items():
        props = resources[function]["Properties"]
        assert props["LoggingConfig"] == {
            "LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN",
            "LogGroup": {"Ref": group}}
        assert props["Tracing"] == "Active"
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_the_api_stage_is_throttled_and_traced(template):
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["TracingEnabled"] is True
    [setting] = api["MethodSettings"]
    assert setting["ResourcePath"] == "/*" and setting["HttpMethod"] == "*"
    assert setting["ThrottlingRateLimit"] == {"Ref": "ApiRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ApiBurstLimit"}


def alarms_of(template) -> dict:
    return {name: body["Properties"] for name, body in template["Resources"].items()
            if body.get("Type") == "AWS::CloudWatch::Alarm"}


def test_the_alarms_watch_the_queues_every_function_and_the_api(template):
    watched = {
        name: (props["Namespace"], props["MetricName"],
               tuple(json.dumps(d["Value"], sort_keys=True) for d in props["Dimensions"]))
        for name, props in alarms_of(template).items()
    }
    def function(name):
        return (json.dumps({"Ref": name}),)
    assert watched == {
        "DeadLetterAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                            (json.dumps({"Fn::GetAtt": ["ProcessDeadLetterQueue", "QueueName"]}),)),
        "OldestMessageAlarm": ("AWS/SQS", "ApproximateAgeOfOldestMessage",
                               (json.dumps({"Fn::GetAtt": ["ProcessQueue", "QueueName"]}),)),
        "ApiErrorsAlarm": ("AWS/Lambda", "Errors", function("APIHandler")),
        "ApiThrottlesAlarm": ("AWS/Lambda", "Throttles", function("APIHandler")),
        "ProcessorErrorsAlarm": ("AWS/Lambda", "Errors", function("ProcessOrgMessages")),
        "ProcessorThrottlesAlarm": ("AWS/Lambda", "Throttles", function("ProcessOrgMessages")),
        "SweepErrorsAlarm": ("AWS/Lambda", "Errors", function("SweepOrgs")),
        "SweepThrottlesAlarm": ("AWS/Lambda", "Throttles", function("SweepOrgs")),
        "Api5xxAlarm": ("AWS/ApiGateway", "5XXError",
                        (json.dumps({"Fn::Sub": "${AWS::StackName}-api"}), json.dumps("api"))),
    }
    # The 5xx alarm finds the API by the name the template gives it.
    assert template["Resources"]["RestAPI"]["Properties"]["Name"] == {
        "Fn::Sub": "${AWS::StackName}-api"}
    for props in alarms_of(template).values():
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert props["TreatMissingData"] == "notBreaching"


def test_undeliverable_messages_go_to_the_dead_letter_queue(template):
    queue = template["Resources"]["ProcessQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ProcessDeadLetterQueue", "Arn"]}
    assert template["Resources"]["ProcessDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"


def test_the_bucket_is_private_and_unversioned(template):
    bucket = template["Resources"]["LinklogBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert "VersioningConfiguration" not in bucket


def test_the_bucket_notifies_the_queue_of_log_commits(template):
    resources = template["Resources"]
    [notification] = resources["LinklogBucket"]["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["ProcessQueue", "Arn"]}
    rules = {r["Name"]: r["Value"] for r in notification["Filter"]["S3Key"]["Rules"]}
    key = log_key("acme", 7)
    assert key.startswith(rules["prefix"]) and key.endswith(rules["suffix"])
    # S3 checks it may send before it saves the notification.
    assert resources["LinklogBucket"]["DependsOn"] == ["ProcessQueuePolicy"]
    [statement] = resources["ProcessQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert resources["ProcessQueuePolicy"]["Properties"]["Queues"] == [{"Ref": "ProcessQueue"}]


def test_the_lease_matches_the_filter_too_so_the_handler_must_skip_it(template):
    [notification] = template["Resources"]["LinklogBucket"]["Properties"][
        "NotificationConfiguration"]["QueueConfigurations"]
    rules = {r["Name"]: r["Value"] for r in notification["Filter"]["S3Key"]["Rules"]}
    key = lease_key("acme")
    assert key.startswith(rules["prefix"]) and key.endswith(rules["suffix"])


def permissions(template, role: str) -> dict[str, list]:
    """Action -> the resources a role's policies allow it on."""
    allowed: dict[str, list] = {}
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in statement["Action"]:
                allowed.setdefault(action, []).append(statement["Resource"])
    return allowed


def test_each_function_has_its_own_role(template):
    roles = {function: template["Resources"][function]["Properties"]["Role"]
             for function in CHALICE_FUNCTIONS}
    assert roles == {f: {"Fn::GetAtt": [role, "Arn"]} for f, role in ROLES.items()}
    for role in ROLES.values():
        [statement] = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_each_role_may_do_only_what_its_function_does(template):
    objects = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/orgs/*"}
    logs = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/orgs/*/log/*"}
    markers = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/orgs/*/batches/*"}
    bucket = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}
    due = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/due/*"}
    walk = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/sweep/*"}
    queue = {"Fn::GetAtt": ["ProcessQueue", "Arn"]}

    def common(role):
        group = {"Fn::GetAtt": [f"{role[:-len('Role')]}LogGroup", "Arn"]}
        return {"logs:CreateLogStream": [group], "logs:PutLogEvents": [group],
                "xray:PutTraceSegments": ["*"], "xray:PutTelemetryRecords": ["*"]}

    # The internet-facing API reads, claims batches (their markers), commits
    # log objects and wakes the processor:
    # it can neither delete nor overwrite snapshots and leases. It adds
    # entries to the due index (the net under the processor's wake-up).
    # It may also read a token secret kept under linklog/ (LINKLOG_JWT_SECRET_FROM).
    parameters = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                             "parameter/linklog/*"}
    secrets = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:"
                          "${AWS::AccountId}:secret:linklog/*"}
    assert permissions(template, "ApiRole") == {
        **common("ApiRole"), "s3:GetObject": [objects], "s3:PutObject": [logs, markers, due],
        "s3:ListBucket": [bucket], "sqs:SendMessage": [queue],
        "ssm:GetParameter": [parameters], "secretsmanager:GetSecretValue": [secrets]}
    assert permissions(template, "ProcessorRole") == {
        **common("ProcessorRole"), "s3:GetObject": [objects], "s3:PutObject": [objects, due],
        "s3:DeleteObject": [objects], "s3:ListBucket": [bucket],
        "sqs:ReceiveMessage": [queue], "sqs:DeleteMessage": [queue],
        "sqs:ChangeMessageVisibility": [queue], "sqs:GetQueueAttributes": [queue],
        "sqs:SendMessage": [queue],
        # An org may choose a Bedrock model (or inference profile) for its summaries.
        "bedrock:InvokeModel": [[
            {"Fn::Sub": "arn:${AWS::Partition}:bedrock:*::foundation-model/*"},
            {"Fn::Sub": "arn:${AWS::Partition}:bedrock:*:${AWS::AccountId}:inference-profile/*"}]]}
    assert permissions(template, "SweepRole") == {
        **common("SweepRole"), "s3:GetObject": [objects, walk], "s3:ListBucket": [bucket],
        "s3:PutObject": [due, walk], "s3:DeleteObject": [due], "sqs:SendMessage": [queue]}


def test_a_secret_source_the_api_may_read_is_the_only_kind_the_stack_accepts(template):
    pattern = re.compile(template["Parameters"]["JwtSecretFrom"]["AllowedPattern"])
    for allowed in ("", "ssm:/linklog/jwt-secret", "ssm:linklog/jwt", "secretsmanager:linklog/jwt"):
        assert pattern.fullmatch(allowed), allowed
    for refused in ("ssm:/other/jwt", "secretsmanager:prod/jwt", "vault:linklog/x"):
        assert not pattern.fullmatch(refused), refused


def test_the_api_may_write_exactly_the_keys_of_log_commits_and_batch_markers():
    # IAM's * matches across slashes, like fnmatch's.
    commit = log_key("acme", 7)
    marker = batchmarkers.marker_key("acme", "client:phone", "b1")
    assert fnmatch.fnmatchcase(commit, "orgs/*/log/*")
    assert fnmatch.fnmatchcase(marker, "orgs/*/batches/*")
    for key in (lease_key("acme"), snapshot_key("acme", "abc", 7)):
        assert not fnmatch.fnmatchcase(key, "orgs/*/log/*"), key
        assert not fnmatch.fnmatchcase(key, "orgs/*/batches/*"), key
    # A marker never wakes the processor: the bucket notifies only for .json.
    assert not marker.endswith(".json")


def test_the_due_index_and_the_walk_keys_are_where_the_roles_allow():
    entry = dueindex.entry_key("acme", datetime(2026, 12, 2, tzinfo=timezone.utc))
    assert fnmatch.fnmatchcase(entry, "due/*")
    assert fnmatch.fnmatchcase(WALK_KEY, "sweep/*")
    # Outside orgs/: the bucket notifies the queue of neither.
    assert not entry.startswith("orgs/") and not WALK_KEY.startswith("orgs/")


def test_the_functions_are_told_where_the_store_and_queue_are(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["LINKLOG_STORE"] == {"Fn::Sub": "s3://${BucketName}"}
    assert variables["LINKLOG_QUEUE"] == {"Ref": "ProcessQueue"}
    # Only the API checks tokens.
    assert not [name for name in variables if name.startswith("LINKLOG_JWT")]
    api = template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert api == {
        "LINKLOG_JWT_SECRET": {"Ref": "JwtSecret"},
        "LINKLOG_JWT_SECRET_FROM": {"Ref": "JwtSecretFrom"},
        "LINKLOG_JWKS_URL": {"Ref": "JwksUrl"},
        "LINKLOG_JWT_AUDIENCE": {"Ref": "JwtAudience"},
        "LINKLOG_JWT_ISSUER": {"Ref": "JwtIssuer"},
    }


@pytest.fixture(scope="module")
def packaged_dir(tmp_path_factory) -> Path:
    """`chalice package --merge-template infra/template.json`, run offline.

    The project is copied without requirements.txt, so Chalice zips the app
    and asks no package index for wheels.
    """
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "app.py", project / "app.py")
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".chalice").mkdir()
    chalice_config = ROOT / ".chalice" / "config.json"
    if chalice_config.exists():
        shutil.copy(chalice_config, project / ".chalice" / "config.json")
    else:
        (project / ".chalice" / "config.json").write_text(
            json.dumps({"version": "2.0", "app_name": "linklog", "stages": {"dev": {}}}))
    out = project / "out"
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package",
         "--merge-template", str(TEMPLATE), str(out)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def packaged(packaged_dir):
    return json.loads((packaged_dir / "sam.json").read_text())


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess:
    """cfn-lint on ``paths``, informational findings included (one run: it is slow to start)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--include-checks", "I", "--",
         *map(str, paths)],
        capture_output=True, text=True, timeout=300,
    )


def test_the_merged_template_lints_clean_and_the_old_mistakes_would_not(packaged_dir, tmp_path):
    # The old template beside it: an explicit DependsOn the ARN reference
    # already makes, and a queue without a deletion policy.
    broken = json.loads((packaged_dir / "sam.json").read_text())
    broken["Resources"]["ProcessOrgMessages"]["DependsOn"] = ["ProcessQueue"]
    del broken["Resources"]["ProcessQueue"]["DeletionPolicy"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))

    result = cfn_lint(packaged_dir / "sam.json", tmp_path / "broken.json")
    findings = result.stdout + result.stderr
    assert "sam.json" not in findings, findings
    assert "W3005" in findings and "I3011" in findings


def test_package_has_the_handlers_on_python_3_12(packaged):
    functions = {name: body["Properties"] for name, body in packaged["Resources"].items()
                 if body["Type"] == "AWS::Serverless::Function"}
    assert {name: props["Handler"] for name, props in functions.items()} == {
        "APIHandler": "app.app",
        "ProcessOrgMessages": "app.process_org_messages",
        "SweepOrgs": "app.sweep_orgs",
    }
    assert {props["Runtime"] for props in functions.values()} == {"python3.12"}


def test_package_gives_every_function_room_for_restored_snapshots(packaged):
    # A restore writes the org's database to /tmp (90 MB for 10,000 links)
    # and the API keeps up to eight orgs warm: Lambda's default 512 MB of
    # /tmp would turn restores into replays.
    sizes = {name: body["Properties"]["EphemeralStorage"]["Size"]
             for name, body in packaged["Resources"].items()
             if body["Type"] == "AWS::Serverless::Function"}
    assert sizes == {"APIHandler": 2048, "ProcessOrgMessages": 1024, "SweepOrgs": 1024}


def test_package_maps_the_stacks_queue_with_partial_batch_failures(packaged):
    event = packaged["Resources"]["ProcessOrgMessages"]["Properties"]["Events"][
        "ProcessOrgMessagesSqsEventSource"]
    assert event == {"Type": "SQS", "Properties": {
        "Queue": {"Fn::Sub": "${ProcessQueue.Arn}"},
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "ProcessorConcurrency"}},
    }}


def test_package_lets_chalice_make_no_role(packaged):
    roles = {name for name, body in packaged["Resources"].items()
             if body["Type"] == "AWS::IAM::Role"}
    assert roles == set(ROLES.values())
    for function, role in ROLES.items():
        assert packaged["Resources"][function]["Properties"]["Role"] == {
            "Fn::GetAtt": [role, "Arn"]}


def test_package_sweeps_every_five_minutes(packaged):
    events = packaged["Resources"]["SweepOrgs"]["Properties"]["Events"]
    assert [e["Properties"]["Schedule"] for e in events.values()] == ["rate(5 minutes)"]


def test_package_holds_the_merged_resources_and_every_reference_resolves(packaged):
    resources = packaged["Resources"]
    assert {resources[name]["Type"] for name in (
        "LinklogBucket", "ProcessQueue", "ProcessDeadLetterQueue", "ProcessQueuePolicy",
        "LinklogBucketPolicy", "ApiRole", "AlarmTopic", "DeadLetterAlarm")} == {
        "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy",
        "AWS::IAM::Role", "AWS::SNS::Topic", "AWS::CloudWatch::Alarm"}
    known = set(packaged["Parameters"]) | set(resources)
    dangling = {name for name in references(packaged)
                if not name.startswith("AWS::") and name not in known}
    assert dangling == set()


def test_a_saved_query_lists_the_orgs_whose_cycles_do_not_finish(template):
    query = template["Resources"]["OrgsNotDoneQuery"]["Properties"]
    assert query["LogGroupNames"] == [{"Ref": "ProcessorLogGroup"}]
    # The fields it reads are the cycle log line's.
    for name in ("org", "outcome", "links_unfinished", "links_failed"):
        assert name in query["QueryString"]


def test_the_gateways_own_refusals_have_the_one_error_shape(template):
    responses = template["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    # Unknown routes are 404s, not 403s echoing the Authorization header.
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED", "UNSUPPORTED_MEDIA_TYPE",
            "REQUEST_TOO_LARGE"} <= set(responses)
    for name, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        # The gateway substitutes $context variables; messageString comes quoted.
        filled = (body.replace("$context.error.messageString", '"Missing Authentication Token"')
                  .replace("$context.error.responseType", name)
                  .replace("$context.requestId", "id-1"))
        error = json.loads(filled)["error"]
        assert set(error) == {"code", "message", "details"}, name
        assert error["code"] in STATUSES.values(), name
        assert response["ResponseParameters"]["Headers"] == {"Content-Type": "'application/json'"}
