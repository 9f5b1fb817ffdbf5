"""infra/template.json: valid, self-consistent, and merging with `chalice package`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.keys import lease_key, log_key

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.json"
# Resources `chalice package` generates that the fragment refers to or extends.
CHALICE_FUNCTIONS = {"APIHandler", "ProcessOrgMessages", "SweepOrgs"}
CHALICE_RESOURCES = CHALICE_FUNCTIONS | {"DefaultRole"}


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
    assert extensions == CHALICE_FUNCTIONS


def test_every_function_runs_on_python_3_12(template):
    runtimes = {name: template["Resources"][name]["Properties"]["Runtime"]
                for name in CHALICE_FUNCTIONS}
    assert runtimes == dict.fromkeys(CHALICE_FUNCTIONS, "python3.12")


def test_the_sqs_handler_reports_partial_batch_failures_from_the_stacks_queue(template):
    handler = template["Resources"]["ProcessOrgMessages"]
    event = handler["Properties"]["Events"]["ProcessOrgMessagesSqsEventSource"]["Properties"]
    assert event == {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
    # Chalice names the queue by its ARN, not by a reference: order it by hand.
    assert handler["DependsOn"] == ["ProcessQueue"]
    assert template["Resources"]["ProcessQueue"]["Properties"]["QueueName"] == {
        "Ref": "QueueName"}


def test_the_queue_hides_a_message_longer_than_the_handler_runs(template):
    resources = template["Resources"]
    visibility = resources["ProcessQueue"]["Properties"]["VisibilityTimeout"]
    timeout = resources["ProcessOrgMessages"]["Properties"]["Timeout"]
    assert visibility > timeout


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


def test_the_functions_may_use_the_store_and_the_queue(template):
    policy = template["Resources"]["LinklogAccessPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "DefaultRole"}]
    actions = {
        action: statement["Resource"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in statement["Action"]
    }
    objects = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/*"}
    bucket = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}
    queue = {"Fn::GetAtt": ["ProcessQueue", "Arn"]}
    assert actions == {
        "s3:GetObject": objects,
        "s3:PutObject": objects,
        "s3:DeleteObject": objects,
        "s3:ListBucket": bucket,
        "sqs:SendMessage": queue,
        "sqs:ReceiveMessage": queue,
        "sqs:DeleteMessage": queue,
        "sqs:ChangeMessageVisibility": queue,
        "sqs:GetQueueAttributes": queue,
    }


def test_the_functions_are_told_where_the_store_and_queue_are(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["LINKLOG_STORE"] == {"Fn::Sub": "s3://${BucketName}"}
    assert variables["LINKLOG_QUEUE"] == {"Ref": "ProcessQueue"}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
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
    return json.loads((out / "sam.json").read_text())


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
    queue_name = packaged["Parameters"]["QueueName"]["Default"]
    assert event == {"Type": "SQS", "Properties": {
        "Queue": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"
                             + queue_name},
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }}


def test_package_sweeps_every_five_minutes(packaged):
    events = packaged["Resources"]["SweepOrgs"]["Properties"]["Events"]
    assert [e["Properties"]["Schedule"] for e in events.values()] == ["rate(5 minutes)"]


def test_package_holds_the_merged_resources_and_every_reference_resolves(packaged):
    resources = packaged["Resources"]
    assert {resources[name]["Type"] for name in (
        "LinklogBucket", "ProcessQueue", "ProcessDeadLetterQueue", "ProcessQueuePolicy",
        "LinklogAccessPolicy", "DefaultRole")} == {
        "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "AWS::IAM::Policy",
        "AWS::IAM::Role"}
    known = set(packaged["Parameters"]) | set(resources)
    dangling = {name for name in references(packaged)
                if not name.startswith("AWS::") and name not in known}
    assert dangling == set()
