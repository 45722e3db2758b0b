// Signs credentials with the reference JavaScript stack, for the JS -> Python direction.
// usage: node sign.mjs --seed <64 hex> --vm <verification method id>
//          [--suite eddsa-rdfc-2022|eddsa-jcs-2022] [--documents docs.json] [file.jsonl]
// reads unsigned credentials as JSON lines (stdin when no file), prints signed ones.
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as rdfc} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {createSignCryptosuite} from '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {makeLoader, option, readDocuments, readJsonLines} from './loader.mjs';

const args = process.argv.slice(2);
const seedHex = option(args, '--seed');
const vm = option(args, '--vm');
const suiteName = option(args, '--suite', 'eddsa-rdfc-2022');
if(!seedHex || !vm) {
  console.error('--seed and --vm are required');
  process.exit(2);
}
const documentLoader = makeLoader(readDocuments(option(args, '--documents')));
const positional = args.filter((a, i) => !a.startsWith('--') &&
  !(i > 0 && args[i - 1].startsWith('--')));
const key = await Ed25519Multikey.generate({
  seed: Uint8Array.from(Buffer.from(seedHex, 'hex')), controller: vm.split('#')[0]});
key.id = vm;

for(const credential of await readJsonLines(positional[0])) {
  const cryptosuite = suiteName === 'eddsa-jcs-2022' ? createSignCryptosuite() : rdfc;
  const suite = new DataIntegrityProof({signer: key.signer(), cryptosuite});
  console.log(JSON.stringify(await vc.issue({credential, suite, documentLoader})));
}
