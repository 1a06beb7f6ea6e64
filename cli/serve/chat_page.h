/* The chat page `rwkv serve` serves at GET /: plain HTML and JavaScript in
 * one document, no build step. It keeps the conversation in the page,
 * sends it to /v1/chat/completions with "stream": true and shows the reply
 * as its pieces arrive; an API key typed into it is kept in the browser's
 * localStorage. */
#ifndef RWKV_SERVE_CHAT_PAGE_H
#define RWKV_SERVE_CHAT_PAGE_H

extern const char chat_page_html[];

#endif
