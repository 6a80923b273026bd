//! DescribeUserScramCredentials (0): sluice has no SASL, so no user has
//! SCRAM credentials. Asked for every user, the answer lists none; asked
//! for named users, each is RESOURCE_NOT_FOUND (a name asked twice,
//! DUPLICATE_RESOURCE), as a Kafka without credentials answers
//! (`kafka-configs.sh --describe --entity-type users` asks this beside the
//! users' quotas).

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;

use super::{Call, Handler, Outcome};

/// The DescribeUserScramCredentials handler: [`answer`], at version 0.
pub struct DescribeUserScramCredentialsHandler;

impl Handler for DescribeUserScramCredentialsHandler {
    const KEY: ApiKey = ApiKey::DescribeUserScramCredentials;
    const NAME: &'static str = "DescribeUserScramCredentials";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DescribeUserScramCredentialsRequest;
    type Response = DescribeUserScramCredentialsResponse;

    async fn handle(_: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(answer(&request))
    }
}

/// The answer of a broker where no user has credentials.
pub fn answer(
    request: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let users = request.users.as_deref().unwrap_or_default();
    // One result per distinct name, in the order asked; counted once, so
    // the work is linear in the request.
    let mut counts: HashMap<&str, usize> = HashMap::with_capacity(users.len());
    for u in users {
        *counts.entry(u.name.as_str()).or_default() += 1;
    }
    let mut answered: HashSet<&str> = HashSet::with_capacity(counts.len());
    let results = users
        .iter()
        .filter(|u| answered.insert(u.name.as_str()))
        .map(|u| {
            let name = u.name.as_str();
            let (code, message) = if counts.get(name).copied().unwrap_or(0) > 1 {
                (
                    ErrorCode::DuplicateResource,
                    format!("Cannot describe SCRAM credentials for the same user twice in a single request: {name}"),
                )
            } else {
                (
                    ErrorCode::ResourceNotFound,
                    format!("Attempt to describe a user credential that does not exist: {name}"),
                )
            };
            DescribeUserScramCredentialsResult::default()
                .with_user(u.name.clone())
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    use super::*;

    #[test]
    fn each_name_is_answered_once() {
        let user = |n: &str| UserName::default().with_name(StrBytes::from_string(n.into()));
        let request = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            user("a"),
            user("b"),
            user("a"),
        ]));
        let codes: Vec<(String, i16)> = answer(&request)
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("a".into(), ErrorCode::DuplicateResource.code()),
                ("b".into(), ErrorCode::ResourceNotFound.code()),
            ]
        );
        let all = DescribeUserScramCredentialsRequest::default().with_users(None);
        assert!(answer(&all).results.is_empty(), "nobody has credentials");
    }
}
