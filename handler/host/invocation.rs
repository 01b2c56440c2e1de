//! The JSON the host posts for non-forwarded invocations (the timer), and the JSON it expects
//! back. Field names are the host's (PascalCase); see the custom-handler documentation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"Data":{"timer":{...}},"Metadata":{"sys":{"MethodName":..,"UtcNow":..,"RandGuid":..}}}`.
#[derive(Debug, Deserialize)]
pub struct InvocationRequest {
    #[serde(rename = "Data", default)]
    pub data: serde_json::Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: serde_json::Map<String, Value>,
}

/// The timer binding's value. `ScheduleStatus` is null on the first run and whenever the
/// monitor is off.
#[derive(Debug, Deserialize)]
pub struct TimerInfo {
    #[serde(rename = "IsPastDue", default)]
    pub is_past_due: bool,
    #[serde(rename = "ScheduleStatus", default)]
    pub schedule_status: Option<Value>,
}

impl InvocationRequest {
    pub fn timer(&self, binding: &str) -> Result<TimerInfo, String> {
        let value = self
            .data
            .get(binding)
            .ok_or_else(|| format!("the invocation has no Data.{binding}"))?;
        serde_json::from_value(value.clone())
            .map_err(|e| format!("Data.{binding} is not a timer: {e}"))
    }

    /// `Metadata.sys.UtcNow`: the host's clock at the invocation.
    pub fn utc_now(&self) -> Option<time::OffsetDateTime> {
        let raw = self.metadata.get("sys")?.get("UtcNow")?.as_str()?;
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()
    }
}

/// What the host reads back: `Logs` land in its log (Application Insights) at Information.
#[derive(Debug, Serialize, Default)]
pub struct InvocationResponse {
    #[serde(rename = "Outputs")]
    pub outputs: serde_json::Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_host_timer_payload_with_null_status() {
        let raw = r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"function-cleanup","UtcNow":"2026-11-28T10:15:00.1234567Z","RandGuid":"0f0e"}}}"#;
        let inv: InvocationRequest = serde_json::from_str(raw).unwrap();
        let timer = inv.timer("timer").unwrap();
        assert!(!timer.is_past_due);
        assert!(timer.schedule_status.is_none());
        assert_eq!(inv.utc_now().unwrap().unix_timestamp(), 1_795_860_900);
    }

    #[test]
    fn a_missing_binding_is_named() {
        let inv: InvocationRequest = serde_json::from_str(r#"{"Data":{}}"#).unwrap();
        assert_eq!(
            inv.timer("timer").unwrap_err(),
            "the invocation has no Data.timer"
        );
    }

    #[test]
    fn the_answer_uses_the_host_field_names() {
        let v = serde_json::to_value(InvocationResponse {
            logs: vec!["x".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v["Logs"][0], "x");
        assert!(v["ReturnValue"].is_null());
        assert!(v["Outputs"].is_object());
    }
}
