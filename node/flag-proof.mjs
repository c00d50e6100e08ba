// Which users a TypeScript/Node service admits, through the SDKs such a service uses:
// Unleash's Node SDK against a server, and OpenFeature's flagd provider reading a file in process.
// Usage: node flag-proof.mjs '{"flag": ..., "users": [...], "unleash": {"url", "token"}?, "flagd": "path"?}'
// Prints {"unleash": [admitted ids], "flagd": [admitted ids]} for the sources given.
import { InMemStorageProvider, startUnleash } from 'unleash-client';
import { OpenFeature } from '@openfeature/server-sdk';
import { FlagdProvider } from '@openfeature/flagd-provider';

const ask = JSON.parse(process.argv[2]);
const result = {};

if (ask.unleash) {
  const unleash = await startUnleash({
    url: `${ask.unleash.url}/api`,
    appName: 'orders-node',
    customHeaders: { Authorization: ask.unleash.token },
    disableMetrics: true,
    storageProvider: new InMemStorageProvider(),
  });
  result.unleash = ask.users.filter((userId) => unleash.isEnabled(ask.flag, { userId }));
  unleash.destroy();
}

if (ask.flagd) {
  const provider = new FlagdProvider({ resolverType: 'in-process', offlineFlagSourcePath: ask.flagd });
  await OpenFeature.setProviderAndWait(provider);
  const client = OpenFeature.getClient();
  result.flagd = [];
  for (const targetingKey of ask.users) {
    if (await client.getBooleanValue(ask.flag, false, { targetingKey })) result.flagd.push(targetingKey);
  }
  await OpenFeature.close();
}

process.stdout.write(JSON.stringify(result));
process.exit(0);
