"""The quota layer over real HTTP: AWS's throttling answers, parsed and retried by botocore."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.model
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from estimator.clock import ManualClock
from siblings.local.quota import (
    DEFAULT_QUOTAS,
    QuotaLayer,
    QuotaServerProcess,
    QuotaStatsClient,
)
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer

# A bucket holds this many seconds of its rate, so a tiny rate still gives a burst of several
# calls while refilling so slowly (well under one token per minute) that counts are exact.
BURST_SECONDS = 1000.0
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def quota_server() -> Iterator[tuple[LocalAwsServer, QuotaLayer]]:
    """A moto server of its own behind a quota layer (moto's state is per process anyway)."""
    layer = QuotaLayer(burst_seconds=BURST_SECONDS)
    server = LocalAwsServer(middleware=layer.wrap).start()
    try:
        yield server, layer
    finally:
        server.stop()


class Quotaed:
    """The server, its layer, and clients pointed at it."""

    def __init__(self, server: LocalAwsServer, layer: QuotaLayer) -> None:
        self.server = server
        self.layer = layer
        self.session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)

    def client(self, service: str, config: Config = NO_RETRIES) -> Any:
        """A boto3 client on the server (no retries unless ``config`` says so)."""
        return self.session.client(  # type: ignore[call-overload]
            service, endpoint_url=self.server.endpoint_url, config=config
        )

    def limit(self, quota: str, capacity: int) -> None:
        """Scale every quota so that ``quota``'s bucket holds ``capacity`` calls."""
        self.layer.quota_scale = capacity / (DEFAULT_QUOTAS[quota].tps * BURST_SECONDS)


@pytest.fixture
def q(quota_server: tuple[LocalAwsServer, QuotaLayer]) -> Iterator[Quotaed]:
    """A clean server and layer for each test: state reset, counts zeroed, buckets full."""
    server, layer = quota_server
    server.reset()
    layer.enabled = True
    layer.quota_scale = 1.0
    layer.reset()
    yield Quotaed(server, layer)
    layer.enabled = True


def outcomes(calls: list[Callable[[], Any]]) -> list[str]:
    """Run each call; ``"ok"`` or the parsed error code."""
    results = []
    for call in calls:
        try:
            call()
            results.append("ok")
        except ClientError as exc:
            results.append(exc.response["Error"]["Code"])
    return results


def error_of(call: Callable[[], Any]) -> ClientError:
    """The ClientError ``call`` raises."""
    with pytest.raises(ClientError) as info:
        call()
    return info.value


def metric_query(function_name: str = "fn") -> dict[str, Any]:
    """Arguments of a GetMetricData call for one Lambda metric."""
    now = datetime.now(UTC)
    return {
        "MetricDataQueries": [
            {
                "Id": "inv",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Invocations",
                        "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        "StartTime": now - timedelta(minutes=5),
        "EndTime": now,
    }


def make_table(q: Quotaed, name: str = "quota-table") -> Any:
    """An on-demand table with hash key ``pk``, created with throttling off."""
    q.layer.enabled = False
    ddb = q.client("dynamodb")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    q.layer.enabled = True
    return ddb


def test_under_quota_every_call_passes_and_is_counted(q: Quotaed) -> None:
    ddb = make_table(q)
    q.layer.reset()
    cw, events, lam, s3 = (q.client(s) for s in ("cloudwatch", "events", "lambda", "s3"))
    for _ in range(5):
        cw.get_metric_data(**metric_query())
        events.list_rules()
        lam.list_functions()
        ddb.get_item(TableName="quota-table", Key={"pk": {"S": "a"}})
    s3.create_bucket(Bucket="quota-bucket")
    s3.put_object(Bucket="quota-bucket", Key="k", Body=b"x")
    s3.get_object(Bucket="quota-bucket", Key="k")

    assert q.layer.throttled() == 0
    stats = q.layer.stats()
    assert stats[("monitoring", "GetMetricData")].calls == 5
    assert stats[("events", "ListRules")].calls == 5
    assert stats[("lambda", "ListFunctions")].calls == 5
    assert stats[("dynamodb", "GetItem")].calls == 5
    assert stats[("s3", "GetObject")].calls == 1
    assert q.layer.count() == 23
    assert q.layer.retries() == 0


def test_cloudwatch_burst_gets_throttling_on_both_of_its_protocols(
    q: Quotaed, monkeypatch: pytest.MonkeyPatch
) -> None:
    q.limit("cloudwatch.GetMetricData", 3)
    cw = q.client("cloudwatch")
    # This botocore prefers awsJson1_0 among CloudWatch's protocols (cbor, json, query).
    assert cw.meta.service_model.resolved_protocol == "json"
    assert outcomes([lambda: cw.get_metric_data(**metric_query())] * 3) == ["ok"] * 3

    exc = error_of(lambda: cw.get_metric_data(**metric_query()))

    response = exc.response
    assert response["Error"]["Code"] == "Throttling"  # CloudWatch's code, via x-amzn-query-error
    assert response["Error"]["QueryErrorCode"] == "ThrottlingException"  # the __type
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/x-amz-json-1.0"
    )
    # A client speaking smithy-rpc-v2-cbor gets the same error as CBOR. (moto cannot answer
    # CBOR requests, so only the throttled answer can be checked end to end.)
    monkeypatch.setattr(
        botocore.model,
        "PRIORITY_ORDERED_SUPPORTED_PROTOCOLS",
        ("smithy-rpc-v2-cbor", *botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS),
    )
    cbor = Quotaed(q.server, q.layer).client("cloudwatch")
    assert cbor.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"

    exc = error_of(lambda: cbor.get_metric_data(**metric_query()))

    assert exc.response["Error"]["Code"] == "Throttling"
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    headers = exc.response["ResponseMetadata"]["HTTPHeaders"]
    assert (headers["smithy-protocol"], headers["content-type"]) == (
        "rpc-v2-cbor",
        "application/cbor",
    )
    assert q.layer.count("monitoring", "GetMetricData") == 5
    assert q.layer.throttled("monitoring", "GetMetricData") == 2
    # GetMetricStatistics has its own quota, untouched by the GetMetricData burst.
    now = datetime.now(UTC)
    cw.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Duration",
        StartTime=now - timedelta(minutes=5),
        EndTime=now,
        Period=300,
        Statistics=["Average"],
    )


def test_eventbridge_throttles_each_api_on_its_own(q: Quotaed) -> None:
    q.limit("events.other", 2)
    events = q.client("events")
    describe = lambda: events.describe_rule(Name="missing")  # noqa: E731
    # Calls that reach moto get its answer (the rule does not exist); the third is throttled.
    assert outcomes([describe] * 3) == ["ResourceNotFoundException"] * 2 + ["ThrottlingException"]
    exc = error_of(describe)
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert exc.response["ResponseMetadata"]["HTTPHeaders"]["content-type"].startswith(
        "application/x-amz-json-1.1"
    )
    # Other EventBridge APIs have buckets of their own; PutEvents is not in this quota.
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert outcomes([events.list_rules, lambda: events.list_rule_names_by_target(TargetArn=arn)]) \
        == ["ok", "ok"]
    assert q.layer.throttled("events", "DescribeRule") == 2
    assert q.layer.throttled("events") == 2


def test_lambda_throttles_with_429_too_many_requests(q: Quotaed) -> None:
    q.limit("lambda.Invoke", 2)
    lam = q.client("lambda")
    invoke = lambda: lam.invoke(FunctionName="missing", InvocationType="Event")  # noqa: E731
    assert "TooManyRequestsException" not in outcomes([invoke] * 2)  # both reached moto

    exc = error_of(invoke)

    assert exc.response["Error"]["Code"] == "TooManyRequestsException"
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert exc.response["Reason"] == "CallerRateLimitExceeded"
    assert isinstance(exc, lam.exceptions.TooManyRequestsException)
    assert (q.layer.count("lambda", "Invoke"), q.layer.throttled("lambda", "Invoke")) == (3, 1)


def test_lambda_control_plane_quota_is_shared_by_its_apis(q: Quotaed) -> None:
    q.limit("lambda.control-plane", 2)
    lam = q.client("lambda")
    results = outcomes([lam.list_functions, lam.list_layers, lam.list_functions])
    assert results == ["ok", "ok", "TooManyRequestsException"]


def test_scheduler_get_schedule_over_quota_is_throttled_like_scheduler(q: Quotaed) -> None:
    scheduler = q.client("scheduler")
    scheduler.create_schedule(
        Name="nightly",
        ScheduleExpression="rate(5 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:lambda:us-east-1:123456789012:function:w",
            "RoleArn": "arn:aws:iam::123456789012:role/r",
        },
    )
    q.limit("scheduler.GetSchedule", 2)
    get = lambda: scheduler.get_schedule(Name="nightly")  # noqa: E731
    assert outcomes([get, get]) == ["ok", "ok"]
    exc = error_of(get)
    assert exc.response["Error"]["Code"] == "ThrottlingException"
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert isinstance(exc, scheduler.exceptions.ThrottlingException)
    # CreateSchedule has its own quota: not counted in GetSchedule's.
    assert q.layer.throttled("scheduler", "GetSchedule") == 1


def test_dynamodb_partition_over_quota_gets_provisioned_throughput_exceeded(q: Quotaed) -> None:
    ddb = make_table(q)
    q.limit("dynamodb.partition", 3)  # 3 read units or 1 write unit per (slow) refill
    get = lambda pk: lambda: ddb.get_item(  # noqa: E731
        TableName="quota-table", Key={"pk": {"S": pk}}, ConsistentRead=True
    )
    assert outcomes([get("hot")] * 3) == ["ok"] * 3

    exc = error_of(get("hot"))

    assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert exc.response["ThrottlingReasons"] == [
        {
            "reason": "TableReadKeyRangeThroughputExceeded",
            "resource": "arn:aws:dynamodb:us-east-1:123456789012:table/quota-table",
        }
    ]
    # Another partition has its own capacity; a write costs three read units of it.
    put = lambda pk: lambda: ddb.put_item(  # noqa: E731
        TableName="quota-table", Item={"pk": {"S": pk}}
    )
    assert outcomes([put("cold"), put("cold")]) == ["ok", "ProvisionedThroughputExceededException"]
    exc = error_of(put("cold"))
    assert exc.response["ThrottlingReasons"][0]["reason"] == "TableWriteKeyRangeThroughputExceeded"


def test_batch_write_over_a_partition_leaves_its_items_unprocessed(q: Quotaed) -> None:
    ddb = make_table(q)
    q.limit("dynamodb.partition", 3)  # one write unit per partition per (slow) refill
    ddb.put_item(TableName="quota-table", Item={"pk": {"S": "hot"}})
    put = lambda pk: {"PutRequest": {"Item": {"pk": {"S": pk}, "v": {"S": "new"}}}}  # noqa: E731

    reply = ddb.batch_write_item(RequestItems={"quota-table": [put("hot"), put("a"), put("b")]})

    # DynamoDB's shape: the request of the hot partition comes back, the others are written.
    assert reply["UnprocessedItems"] == {"quota-table": [put("hot")]}
    assert q.layer.unprocessed("dynamodb", "BatchWriteItem") == 1
    assert q.layer.throttled("dynamodb", "BatchWriteItem") == 0
    q.layer.enabled = False
    stored = ddb.scan(TableName="quota-table")["Items"]
    assert sorted((i["pk"]["S"], "v" in i) for i in stored) == [("a", True), ("b", True), ("hot", False)]
    q.layer.enabled = True
    # Nothing of the batch can be served: the whole call is throttled, as on DynamoDB.
    exc = error_of(lambda: ddb.batch_write_item(RequestItems={"quota-table": [put("hot")]}))
    assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert q.layer.throttled("dynamodb", "BatchWriteItem") == 1


def test_batch_get_over_a_partition_leaves_its_keys_unprocessed(q: Quotaed) -> None:
    ddb = make_table(q)
    q.layer.enabled = False
    for pk in ("hot", "x", "y"):
        ddb.put_item(TableName="quota-table", Item={"pk": {"S": pk}})
    q.layer.enabled = True
    q.limit("dynamodb.partition", 3)
    for _ in range(3):  # the hot partition's three read units
        ddb.get_item(TableName="quota-table", Key={"pk": {"S": "hot"}}, ConsistentRead=True)
    keys = [{"pk": {"S": pk}} for pk in ("hot", "x", "y")]

    reply = ddb.batch_get_item(RequestItems={"quota-table": {"Keys": keys, "ConsistentRead": True}})

    assert sorted(i["pk"]["S"] for i in reply["Responses"]["quota-table"]) == ["x", "y"]
    assert reply["UnprocessedKeys"] == {
        "quota-table": {"Keys": [{"pk": {"S": "hot"}}], "ConsistentRead": True}
    }
    assert q.layer.unprocessed("dynamodb", "BatchGetItem") == 1
    # A batch of keys that all fit is served whole.
    whole = ddb.batch_get_item(RequestItems={"quota-table": {"Keys": keys[1:2]}})
    assert not whole.get("UnprocessedKeys") and len(whole["Responses"]["quota-table"]) == 1


def test_dynamodb_control_plane_over_quota_gets_throttling_exception(q: Quotaed) -> None:
    ddb = make_table(q)
    q.limit("dynamodb.control-plane", 2)
    describe = lambda: ddb.describe_table(TableName="quota-table")  # noqa: E731
    assert outcomes([describe] * 3) == ["ok", "ok", "ThrottlingException"]


def test_s3_prefix_over_quota_gets_503_slow_down(q: Quotaed) -> None:
    q.layer.enabled = False
    s3 = q.client("s3")
    s3.create_bucket(Bucket="quota-bucket")
    q.layer.enabled = True
    q.limit("s3.prefix-write", 2)
    put = lambda key: lambda: s3.put_object(Bucket="quota-bucket", Key=key, Body=b"x")  # noqa: E731

    assert outcomes([put("a/1"), put("a/2")]) == ["ok", "ok"]
    exc = error_of(put("a/3"))

    assert exc.response["Error"]["Code"] == "SlowDown"
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert outcomes([put("b/1")]) == ["ok"]  # another prefix, another bucket of tokens


def _throttled_call(q: Quotaed, service: str, config: Config) -> Callable[[], Any]:
    """Set ``service``'s quota to one call and return a call that uses it."""
    if service == "cloudwatch":
        q.limit("cloudwatch.GetMetricData", 1)
        cw = q.client("cloudwatch", config)
        return lambda: cw.get_metric_data(**metric_query())
    if service == "events":
        q.limit("events.other", 1)
        events = q.client("events", config)
        return lambda: events.list_rules()
    if service == "lambda":
        q.limit("lambda.control-plane", 1)
        lam = q.client("lambda", config)
        return lambda: lam.list_functions()
    if service == "dynamodb":
        ddb = make_table(q)
        q.limit("dynamodb.control-plane", 1)
        ddb = q.client("dynamodb", config)
        return lambda: ddb.describe_table(TableName="quota-table")
    q.layer.enabled = False
    s3 = q.client("s3", config)
    s3.create_bucket(Bucket="quota-bucket")
    q.layer.enabled = True
    q.limit("s3.prefix-read", 1)
    return lambda: s3.list_objects_v2(Bucket="quota-bucket")


@pytest.mark.parametrize("mode", ["standard", "legacy"])
@pytest.mark.parametrize("service", ["cloudwatch", "events", "lambda", "dynamodb", "s3"])
def test_botocore_classifies_the_answer_as_throttling_and_retries(
    q: Quotaed, service: str, mode: str, sdk_sleeps_on_clock: ManualClock
) -> None:
    # The retry's back-off passes on a virtual clock: the bucket (on the real one) cannot
    # refill during it, so the retry is throttled whatever the machine's speed.
    config = Config(retries={"total_max_attempts": 2, "mode": mode})
    call = _throttled_call(q, service, config)
    q.layer.reset()  # count from here, with a full bucket of one call
    call()

    exc = error_of(call)  # no token left: the call and its retry are both throttled

    assert exc.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert ThrottledRetryableChecker().is_retryable(
        RetryContext(attempt_number=1, parsed_response=exc.response)
    )
    assert (q.layer.count(), q.layer.throttled(), q.layer.retries()) == (3, 2, 1)


def test_concurrent_burst_counts_are_exact(q: Quotaed) -> None:
    q.limit("cloudwatch.GetMetricData", 20)
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        cw = q.client("cloudwatch")
        mine = outcomes([lambda: cw.get_metric_data(**metric_query())] * 5)
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count("ok") == 20
    assert results.count("Throttling") == 60
    stats = q.layer.stats()[("monitoring", "GetMetricData")]
    assert (stats.calls, stats.throttled, stats.retries) == (80, 60, 0)


def test_stats_reset_and_config_over_http(q: Quotaed) -> None:
    client = QuotaStatsClient(q.server.endpoint_url)
    q.client("events").list_rules()
    q.server.reset()  # moto's own API: not an AWS call, not counted

    snapshot = client.snapshot()
    assert snapshot["quota_scale"] == 1.0
    assert client.stats() == q.layer.stats()
    assert client.stats()[("events", "ListRules")].calls == 1
    assert q.layer.count() == 1

    client.configure(quota_scale=0.25, enabled=False)
    assert (q.layer.quota_scale, q.layer.enabled) == (0.25, False)
    assert q.layer.rate("cloudwatch.GetMetricData") == 12.5
    client.reset()
    assert client.stats() == {}
    with pytest.raises(ValueError):
        q.layer.quota_scale = 0


@pytest.mark.slow
def test_separate_process_server_throttles_and_reports_over_http() -> None:
    # GetMetricData: 50 * 0.002 = 0.1 call/s, bucket of 100 s = 10 calls.
    with QuotaServerProcess(quota_scale=0.002, burst_seconds=100) as child:
        assert child.endpoint_url.startswith("http://127.0.0.1:")
        cw = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS).client(
            "cloudwatch", endpoint_url=child.endpoint_url, config=NO_RETRIES
        )
        results = outcomes([lambda: cw.get_metric_data(**metric_query())] * 12)
        stats = child.client.stats()[("monitoring", "GetMetricData")]
        process = child._process
    assert results == ["ok"] * 10 + ["Throttling"] * 2
    assert (stats.calls, stats.throttled) == (12, 2)
    assert process is not None and process.returncode == 0  # exited when its stdin closed
