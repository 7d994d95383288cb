// Runs inside a time-warped ecslocal task: the SDK's default credential chain and its own
// refresh rule (5 minutes before Expiration), on a clock libfaketime runs N times faster.
// Calls STS once a minute of task time until it has used 4 sets of credentials; prints each
// new key with the task-clock time it was first seen and the Expiration it was served with,
// then a summary.
//
// The chain's timeouts run on the task's clock too: its 1000 ms for the credentials endpoint
// would be 0.7 ms of real time at 1440x, which a busy machine does not always answer in. So the
// default chain (defaultProvider, what `new STSClient({})` builds) is given them scaled by the
// task's speed-up, read from FAKETIME (which ecslocal sets: "+0 xN").
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
const { defaultProvider } = require("@aws-sdk/credential-provider-node");

const speed = Number(/x([0-9.]+)/.exec(process.env.FAKETIME)[1]);

(async () => {
  const sts = new STSClient({ credentials: defaultProvider({ timeout: 1000 * speed }) });
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
                                   arn: identity.Arn,
                                   expiration: credentials.expiration.getTime() / 1000 }));
    }
    await new Promise((resolve) => setTimeout(resolve, 60000));
  }
  console.log(JSON.stringify({ calls, start: start / 1000, end: Date.now() / 1000 }));
})().catch((error) => {
  console.log(`error ${error.name}: ${error.message}`);
  process.exit(1);
});
