use integration_tests::{ApiRequest, TestEnv};

#[tokio::test]
async fn register_login_and_me() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Ada").await;
    let me = env.send(ApiRequest::get("/users/me").bearer(&token)).await;
    assert_eq!(me.status, 200, "{}", me.raw_body);
    assert_eq!(me.body, user);
}
