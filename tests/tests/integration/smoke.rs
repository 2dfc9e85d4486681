use integration_tests::TestEnv;

#[tokio::test]
async fn register_login_and_me() {
    let env = TestEnv::new().await;
    let (token, user) = env.new_user("Ada").await;
    let me = env.me(&token).await;
    assert_eq!(me.status, 200, "{}", me.raw_body);
    assert_eq!(me.body, user);
}
