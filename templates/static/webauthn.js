// Latchkey: the passkey ceremony of the one page that needs it.
// The page carries the options (JSON, binary values base64url) in
// data-options; this script asks the browser for a new passkey
// (navigator.credentials.create) or an assertion (get), and posts the
// answer as JSON in the form's credential field. No inline script, no eval,
// no network request of its own.
'use strict';
(function () {
  const root = document.getElementById('passkey');
  if (!root) { return; }
  const form = document.getElementById('passkey-form');
  const field = document.getElementById('passkey-credential');
  const start = document.getElementById('passkey-start');
  const status = document.getElementById('passkey-status');
  const nojs = document.getElementById('passkey-nojs');
  const say = text => { status.textContent = text; };

  if (!window.PublicKeyCredential || !navigator.credentials) {
    nojs.textContent = 'This browser cannot use passkeys. Try another browser, or choose another method.';
    return;
  }
  nojs.hidden = true;
  form.hidden = false;

  const fromB64 = s => {
    const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
    const out = new Uint8Array(b.length);
    for (let i = 0; i < b.length; i++) { out[i] = b.charCodeAt(i); }
    return out.buffer;
  };
  const toB64 = buf => {
    const bytes = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };
  const creds = list => (list || []).map(c => Object.assign({}, c, {id: fromB64(c.id)}));

  const mode = root.dataset.mode;
  const opts = JSON.parse(root.dataset.options);

  async function run() {
    start.disabled = true;
    say(mode === 'create' ? 'Follow your browser\'s instructions to create the passkey.' : 'Follow your browser\'s instructions to use your passkey.');
    try {
      let answer;
      if (mode === 'create') {
        const pk = Object.assign({}, opts, {
          challenge: fromB64(opts.challenge),
          user: Object.assign({}, opts.user, {id: fromB64(opts.user.id)}),
          excludeCredentials: creds(opts.excludeCredentials),
        });
        const c = await navigator.credentials.create({publicKey: pk});
        const r = c.response;
        answer = {
          id: c.id, rawId: toB64(c.rawId), type: c.type,
          authenticatorAttachment: c.authenticatorAttachment || undefined,
          clientExtensionResults: c.getClientExtensionResults(),
          response: {
            clientDataJSON: toB64(r.clientDataJSON),
            attestationObject: toB64(r.attestationObject),
            transports: r.getTransports ? r.getTransports() : undefined,
          },
        };
      } else {
        const pk = Object.assign({}, opts, {challenge: fromB64(opts.challenge), allowCredentials: creds(opts.allowCredentials)});
        const c = await navigator.credentials.get({publicKey: pk});
        const r = c.response;
        answer = {
          id: c.id, rawId: toB64(c.rawId), type: c.type,
          authenticatorAttachment: c.authenticatorAttachment || undefined,
          clientExtensionResults: c.getClientExtensionResults(),
          response: {
            clientDataJSON: toB64(r.clientDataJSON),
            authenticatorData: toB64(r.authenticatorData),
            signature: toB64(r.signature),
            userHandle: r.userHandle ? toB64(r.userHandle) : undefined,
          },
        };
      }
      field.value = JSON.stringify(answer);
      say('Checking the passkey…');
      form.submit();
    } catch (e) {
      start.disabled = false;
      say('The passkey was not ' + (mode === 'create' ? 'created' : 'used') + '. You can try again' +
        (mode === 'create' ? '.' : ', or choose another method.'));
    }
  }
  start.addEventListener('click', run);
}());
