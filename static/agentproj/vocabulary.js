// The words the server and the pages share (agentproj/vocabulary.py), as the page embeds them
// (#vocabulary): websocket close codes, event kinds and the texts the scripts show. No script
// spells one of them itself.

export const VOCABULARY = JSON.parse(document.getElementById("vocabulary").textContent);
export const CLOSE_CODES = VOCABULARY.close_codes;
export const EVENT_KINDS = VOCABULARY.event_kinds;
export const TEXTS = VOCABULARY.texts;
