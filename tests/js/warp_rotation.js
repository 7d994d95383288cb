// Runs inside a time-warped ecslocal task: the SDK's default credential chain and its own
// refresh rule (5 minutes before Expiration), on a clock libfaketime runs N times faster.
// Calls STS once a minute of task time until it has used 4 sets of credentials; prints each
// new key with the task-clock hours since the start, then a summary.
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");

(async () => {
  const sts = new STSClient({});
  const start = Date.now();
  const keys = [];
  let calls = 0;
  while (keys.length < 4 && Date.now() - start < 30 * 3600e3) {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    calls += 1;
    const credentials = await sts.config.credentials();
    if (keys[keys.length - 1] !== credentials.accessKeyId) {
      keys.push(credentials.accessKeyId);
      console.log(JSON.stringify({ key: credentials.accessKeyId, at: Date.now() / 1000,
                                   arn: identity.Arn }));
    }
    await new Promise((resolve) => setTimeout(resolve, 60000));
  }
  console.log(JSON.stringify({ calls, start: start / 1000, end: Date.now() / 1000 }));
})().catch((error) => {
  console.log(`error ${error.name}: ${error.message}`);
  process.exit(1);
});
