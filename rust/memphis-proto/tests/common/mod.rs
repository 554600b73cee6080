#![allow(dead_code)]
use memphis_proto::{Completed, MsgOp, Sink};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Info(Vec<u8>),
    Err(Vec<u8>),
    Ping,
    Pong,
    Msg {
        subject: Vec<u8>,
        sid: u64,
        reply: Option<Vec<u8>>,
        headers: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Done(Completed),
    PullEnd {
        sid: u64,
        token: u64,
        code: u16,
        description: Vec<u8>,
        undelivered: u64,
    },
}

#[derive(Debug, Default)]
pub struct Rec {
    pub events: Vec<Ev>,
}

impl Sink for Rec {
    fn info(&mut self, json: &[u8]) {
        self.events.push(Ev::Info(json.to_vec()));
    }
    fn error(&mut self, text: &[u8]) {
        self.events.push(Ev::Err(text.to_vec()));
    }
    fn ping(&mut self) {
        self.events.push(Ev::Ping);
    }
    fn pong(&mut self, _rtt: Option<u64>) {
        self.events.push(Ev::Pong);
    }
    fn msg(&mut self, m: &MsgOp<'_>) {
        self.events.push(Ev::Msg {
            subject: m.subject.to_vec(),
            sid: m.sid,
            reply: m.reply.map(<[u8]>::to_vec),
            headers: m.headers.map(<[u8]>::to_vec),
            payload: m.payload.to_vec(),
        });
    }
    fn completed(&mut self, c: Completed) {
        self.events.push(Ev::Done(c));
    }
    fn pull_end(&mut self, end: &memphis_proto::conn::PullEnd<'_>) {
        self.events.push(Ev::PullEnd {
            sid: end.sid,
            token: end.token,
            code: end.code,
            description: end.description.to_vec(),
            undelivered: end.undelivered,
        });
    }
}

pub fn msg(
    subject: &str,
    sid: u64,
    reply: Option<&str>,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> Ev {
    Ev::Msg {
        subject: subject.as_bytes().to_vec(),
        sid,
        reply: reply.map(|r| r.as_bytes().to_vec()),
        headers: headers.map(<[u8]>::to_vec),
        payload: payload.to_vec(),
    }
}
