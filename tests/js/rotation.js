// Runs inside an ecslocal task: the SDK's default credential chain (fromHttp with
// AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN), the endpoint from
// AWS_ENDPOINT_URL. Prints the key it used on every call, across credential rotations.
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
const { ECSClient, ListClustersCommand } = require("@aws-sdk/client-ecs");

const rounds = Number(process.argv[2] || 14);

(async () => {
  const sts = new STSClient({});
  const ecs = new ECSClient({});
  for (let i = 0; i < rounds; i++) {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    await ecs.send(new ListClustersCommand({}));
    const credentials = await sts.config.credentials();
    console.log(`ok ${credentials.accessKeyId} ${identity.Arn}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
})().catch((error) => {
  console.log(`error ${error.name}: ${error.message}`);
  process.exit(1);
});
