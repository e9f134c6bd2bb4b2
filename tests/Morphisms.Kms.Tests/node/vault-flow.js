'use strict';
// Drives the Morphisms KMS with the real node-vault client and prints one JSON object of results.
// Usage: node vault-flow.js http://127.0.0.1:PORT
// The C# test (NodeVaultCompatibilityTests) asserts every field; this script only records what it saw.

const nodeVault = require('node-vault');

const endpoint = process.argv[2];
const results = {};

async function attempt(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (err) {
    const status = err.response ? err.response.statusCode : null;
    results[name] = { ok: false, status, message: err.message };
  }
  return results[name];
}

async function main() {
  const vault = nodeVault({ apiVersion: 'v1', endpoint });

  await attempt('health_uninitialised', () => vault.health());
  await attempt('initialized_before', () => vault.initialized());
  const init = await attempt('init', () => vault.init({ secret_shares: 3, secret_threshold: 2 }));
  const keys = init.value.keys;
  const rootToken = init.value.root_token;
  await attempt('status_sealed', () => vault.status());
  await attempt('read_while_sealed', () => vault.read('secret/data/anything'));
  await attempt('unseal_1', () => vault.unseal({ secret_shares: 1, key: keys[0] }));
  await attempt('unseal_2', () => vault.unseal({ secret_shares: 1, key: keys[2] }));
  await attempt('health_unsealed', () => vault.health());
  await attempt('leader', () => vault.leader());

  vault.token = rootToken;
  const rules = [
    'path "secret/data/app/*" { capabilities = ["create", "read", "update", "delete"] }',
    'path "secret/metadata/app/*" { capabilities = ["list", "read"] }',
    'path "secret/undelete/app/*" { capabilities = ["update"] }',
  ].join('\n');
  await attempt('policy_write', () => vault.addPolicy({ name: 'app', rules }));
  await attempt('policy_read', () => vault.getPolicy({ name: 'app' }));
  await attempt('policies', () => vault.policies());
  await attempt('policy_bad', () => vault.addPolicy({ name: 'broken', rules: 'path "x" { capabilities = ["fly"] }' }));
  // Vault accepts a policy sent base64-encoded and stores it decoded.
  await attempt('policy_write_base64', () => vault.addPolicy({ name: 'encoded', rules: Buffer.from(rules).toString('base64') }));
  await attempt('policy_read_base64', () => vault.getPolicy({ name: 'encoded' }));

  const created = await attempt('token_create', () =>
    vault.tokenCreate({ policies: ['app'], ttl: '1h', meta: { team: 'blue' }, display_name: 'app' }));
  const appToken = created.value.auth.client_token;
  const appAccessor = created.value.auth.accessor;
  // tokenCreate makes node-vault switch to the new token (tokenSource): lookup-self runs as the app.
  await attempt('token_lookup_self', () => vault.tokenLookupSelf());
  await attempt('app_create_token', () => vault.tokenCreate({ policies: ['app'] }));
  vault.token = rootToken;
  await attempt('token_lookup', () => vault.tokenLookup({ token: appToken }));
  await attempt('token_lookup_accessor', () => vault.tokenLookupAccessor({ accessor: appAccessor }));
  await attempt('token_renew', () => vault.tokenRenew({ token: appToken, increment: '2h' }));

  vault.token = appToken;
  await attempt('kv_write_1', () => vault.write('secret/data/app/db', { data: { password: 'p1', port: 5432 } }));
  await attempt('kv_write_2', () => vault.write('secret/data/app/db', { options: { cas: 1 }, data: { password: 'p2' } }));
  await attempt('kv_write_bad_cas', () => vault.write('secret/data/app/db', { options: { cas: 1 }, data: { password: 'p3' } }));
  await attempt('kv_read', () => vault.read('secret/data/app/db'));
  await attempt('kv_read_v1', () => vault.read('secret/data/app/db?version=1'));
  await attempt('kv_list', () => vault.list('secret/metadata/app/'));
  await attempt('kv_metadata', () => vault.read('secret/metadata/app/db'));
  await attempt('kv_forbidden', () => vault.write('secret/data/other/x', { data: { a: 'b' } }));
  await attempt('kv_delete', () => vault.delete('secret/data/app/db'));
  await attempt('kv_read_deleted', () => vault.read('secret/data/app/db'));
  await attempt('kv_undelete', () => vault.write('secret/undelete/app/db', { versions: [2] }));
  await attempt('kv_read_undeleted', () => vault.read('secret/data/app/db'));

  vault.token = rootToken;
  await attempt('kv_destroy', () => vault.destroySecretVersions({ mount_point: 'secret', path: 'app/db', versions: [1] }));
  await attempt('kv_metadata_after_destroy', () => vault.read('secret/metadata/app/db'));
  await attempt('mount', () => vault.mount({ mount_point: 'team-kv', type: 'kv', options: { version: '2' } }));
  await attempt('mounts', () => vault.mounts());
  await attempt('team_kv_write', () => vault.write('team-kv/data/x', { data: { k: 'v' } }));
  await attempt('team_kv_read', () => vault.read('team-kv/data/x'));

  await attempt('token_revoke', () => vault.tokenRevoke({ token: appToken }));
  await attempt('token_lookup_revoked', () => vault.tokenLookup({ token: appToken }));
  vault.token = appToken;
  await attempt('kv_read_revoked', () => vault.read('secret/data/app/db'));

  vault.token = rootToken;
  await attempt('seal', () => vault.seal());
  await attempt('status_after_seal', () => vault.status());
  await attempt('health_sealed', () => vault.health());
}

main()
  .catch((err) => { results.fatal = String(err && err.stack || err); })
  .finally(() => { process.stdout.write(JSON.stringify(results) + '\n'); });
