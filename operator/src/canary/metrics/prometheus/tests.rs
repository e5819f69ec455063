use super::*;

fn vars() -> Vars<'static> {
    Vars {
        namespace: "shop",
        service: "api",
        backend: "api-v3",
        stable: "api-v2",
        target: "v3",
        interval: Duration::from_secs(30),
    }
}

#[test]
fn every_variable_is_rendered_with_or_without_spaces() {
    assert_eq!(
        render(
            "{{namespace}}/{{ service }}/{{  backend}}/{{stable  }}/{{ target }}[{{interval}}]",
            &vars()
        )
        .unwrap(),
        "shop/api/api-v3/api-v2/v3[30s]"
    );
    assert_eq!(render("up", &vars()).unwrap(), "up");
}

#[test]
fn the_built_in_queries_select_the_client_side_of_the_canary_backend() {
    assert_eq!(
        render(SUCCESS_RATE_QUERY, &vars()).unwrap(),
        r#"sum(rate(trellis_requests_total{direction="outbound",backend=~"shop/api-v3:.*",classification="success"}[30s])) / sum(rate(trellis_requests_total{direction="outbound",backend=~"shop/api-v3:.*"}[30s])) * 100"#
    );
    let one_minute = Vars {
        interval: Duration::from_secs(60),
        ..vars()
    };
    assert_eq!(
        render(DURATION_QUERY, &one_minute).unwrap(),
        r#"histogram_quantile(0.99, sum by (le) (rate(trellis_request_duration_seconds_bucket{direction="outbound",backend=~"shop/api-v3:.*"}[1m]))) * 1000"#
    );
}

#[test]
fn template_errors_name_the_variable_and_the_known_ones() {
    assert_eq!(
        render("rate(x{{ canary }}[1m])", &vars())
            .unwrap_err()
            .to_string(),
        "unknown variable {{ canary }}; known: namespace, service, backend, stable, target, interval"
    );
    assert_eq!(
        render("up{job=\"{{ namespace\"}", &vars())
            .unwrap_err()
            .to_string(),
        "{{ at byte 8 is not closed with }}"
    );
}

#[test]
fn a_metric_s_query_wins_over_the_built_in_one_and_others_need_one() {
    let metric = |name: &str, query: Option<&str>| Metric {
        name: name.into(),
        query: query.map(Into::into),
        ..Metric::default()
    };
    assert_eq!(
        query_of(&metric(REQUEST_SUCCESS_RATE, None)),
        Ok(SUCCESS_RATE_QUERY)
    );
    assert_eq!(
        query_of(&metric(REQUEST_DURATION, None)),
        Ok(DURATION_QUERY)
    );
    assert_eq!(
        query_of(&metric(REQUEST_DURATION, Some("vector(1)"))),
        Ok("vector(1)")
    );
    assert_eq!(
        query_of(&metric("errors", None)),
        Err("metric \"errors\" has no query: only request-success-rate and request-duration are built in".into())
    );
}

#[test]
fn addresses_are_http_urls_with_an_optional_port_and_path_prefix() {
    let ok = |a: &str| endpoint(a).unwrap();
    let owned = |a: &str, p: &str| (a.to_owned(), p.to_owned());
    assert_eq!(
        ok("http://prometheus.monitoring:9090"),
        owned("prometheus.monitoring:9090", "")
    );
    assert_eq!(ok("http://prometheus/"), owned("prometheus:80", ""));
    assert_eq!(ok("http://[::1]:9090/prom/"), owned("[::1]:9090", "/prom"));
    assert_eq!(ok("http://[::1]"), owned("[::1]:80", ""));
    assert_eq!(
        endpoint("https://prometheus:9090").unwrap_err(),
        "https is not supported by the prometheus provider; use an http:// address"
    );
    assert_eq!(
        endpoint("prometheus:9090").unwrap_err(),
        "not an http:// URL (http://prometheus.monitoring:9090)"
    );
}

#[test]
fn the_query_is_percent_encoded() {
    assert_eq!(
        url_encode(r#"sum(x{a=~"b/c:.*"}[1m]) * 100"#),
        "sum%28x%7Ba%3D~%22b%2Fc%3A.%2A%22%7D%5B1m%5D%29%20%2A%20100"
    );
}

const AT: &str = "http://prometheus:9090";

fn reply(json: &str) -> Measurement {
    answer(AT, 200, json.as_bytes())
}

#[test]
fn one_sample_or_a_scalar_is_the_value() {
    assert_eq!(
        reply(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"99.25"]}]}}"#
        ),
        Measurement::Value(99.25)
    );
    assert_eq!(
        reply(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"42"]}}"#
        ),
        Measurement::Value(42.0)
    );
}

#[test]
fn no_series_or_a_value_that_is_not_finite_is_no_data() {
    assert_eq!(
        reply(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
        Measurement::NoData(
            "the query returned no series from Prometheus at http://prometheus:9090".into()
        )
    );
    for (value, shown) in [("NaN", "NaN"), ("+Inf", "+Inf"), ("-Inf", "-Inf")] {
        let json = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}"#
        );
        assert_eq!(
            reply(&json),
            Measurement::NoData(format!(
                "the query returned {shown} from Prometheus at http://prometheus:9090 (no requests in the window?)"
            ))
        );
    }
}

#[test]
fn several_series_are_an_error_asking_for_an_aggregation() {
    let json = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"backend":"shop/api-v3:80"},"value":[1,"99"]},
        {"metric":{"backend":"shop/api-v3:9090"},"value":[1,"98"]},
        {"metric":{"backend":"shop/api-v3:8080"},"value":[1,"97"]}]}}"#;
    assert_eq!(
        reply(json),
        Measurement::Error(
            "Prometheus at http://prometheus:9090: the query returned 3 series; aggregate it \
             to one with sum() (or another aggregation); the first: {\"backend\":\"shop/api-v3:80\"}"
                .into()
        )
    );
}

#[test]
fn a_refused_query_or_an_answer_that_is_not_the_api_is_an_error() {
    assert_eq!(
        answer(
            AT,
            400,
            br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected \"}\""}"#
        ),
        Measurement::Error(
            "Prometheus at http://prometheus:9090: the query failed (HTTP 400, bad_data): \
             invalid parameter \"query\": 1:5: parse error: unexpected \"}\""
                .into()
        )
    );
    assert_eq!(
        answer(AT, 502, b"Bad Gateway\n"),
        Measurement::Error(
            "Prometheus at http://prometheus:9090: HTTP 502, not the query API's JSON: \"Bad Gateway\""
                .into()
        )
    );
    assert_eq!(
        reply(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#),
        Measurement::Error(
            "Prometheus at http://prometheus:9090: the query returned a matrix; it must return \
             one number (an instant vector with one series, or a scalar)"
                .into()
        )
    );
}
