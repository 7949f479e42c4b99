//! `messaging.v1.TemplateService`: an account's templates, scoped by the token like every feed
//! call; publishing and resetting need a token whose role manages the account. A template is
//! checked by `messaging_templates` (the same code dispatch renders with) before it is stored.

mod job;
mod store;

use messaging_domain::{AccountId, Channel, MessageType};
use messaging_platform::bus::Relay;
use messaging_proto::time::timestamp;
use messaging_proto::v1::template_service_server::TemplateService;
use messaging_proto::v1::{self as api};
use messaging_templates::{Part, Problem, Values, catalogue};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::auth::{account_of, role_of, technician_of};
use crate::convert::internal;
use crate::scope;
use store::{Content, PublishError, Version};

/// The gRPC service.
pub struct Templates {
    pub(crate) pool: PgPool,
    pub(crate) relay: Relay,
    /// How long a technician still sees the customer of a finished job (previews keep to the scope).
    pub(crate) recent: std::time::Duration,
}

#[tonic::async_trait]
impl TemplateService for Templates {
    async fn list_templates(
        &self,
        request: Request<api::ListTemplatesRequest>,
    ) -> Result<Response<api::ListTemplatesResponse>, Status> {
        let account = account_of(&request)?;
        let stored = store::current(&self.pool, &account).await.map_err(internal)?;
        let mut templates = Vec::new();
        for kind in catalogue::AUTOMATIC {
            for channel in catalogue::channels(*kind).iter().copied() {
                let found = stored.iter().find(|v| v.kind == *kind && v.channel == channel);
                templates.push(found.map_or_else(|| never_published(*kind, channel), template));
            }
        }
        let variables = catalogue::CATALOGUE.iter().map(variable).collect();
        Ok(Response::new(api::ListTemplatesResponse { templates, variables }))
    }

    async fn get_template(
        &self,
        request: Request<api::GetTemplateRequest>,
    ) -> Result<Response<api::GetTemplateResponse>, Status> {
        let account = account_of(&request)?;
        let r = request.into_inner();
        let (kind, channel) = which(r.r#type, r.channel)?;
        let number = (r.version > 0).then(|| i32::try_from(r.version).unwrap_or(i32::MAX));
        let found = store::one(&self.pool, &account, kind, channel, number).await.map_err(internal)?;
        let template = match (found, number) {
            (Some(found), _) => template(&found),
            (None, None) => never_published(kind, channel),
            (None, Some(n)) => {
                return Err(Status::not_found(format!("no version {n} of the {kind} {channel} template")));
            }
        };
        Ok(Response::new(api::GetTemplateResponse { template: Some(template) }))
    }

    async fn preview_template(
        &self,
        request: Request<api::PreviewTemplateRequest>,
    ) -> Result<Response<api::PreviewTemplateResponse>, Status> {
        let account = account_of(&request)?;
        let technician = technician_of(&request);
        let r = request.into_inner();
        let (kind, channel) = which(r.r#type, r.channel)?;
        let job = match r.message_id.as_str() {
            "" => None,
            id => {
                let scope =
                    scope::resolve(&self.pool, &account, technician.as_ref(), self.recent).await.map_err(internal)?;
                Some(job::values(&self.pool, &account, &scope, kind, id).await?)
            }
        };
        Ok(Response::new(preview(kind, channel, &content(r.content), job.as_ref())))
    }

    async fn publish_template(
        &self,
        request: Request<api::PublishTemplateRequest>,
    ) -> Result<Response<api::PublishTemplateResponse>, Status> {
        let account = manager(&request)?;
        let r = request.into_inner();
        let (kind, channel) = which(r.r#type, r.channel)?;
        let content = content(r.content);
        let checked = preview(kind, channel, &content, None);
        if !checked.problems.is_empty() {
            let listed: Vec<String> = checked.problems.iter().map(describe).collect();
            return Err(Status::invalid_argument(format!("the template cannot be published: {}", listed.join("; "))));
        }
        let made = self.publish(&account, kind, channel, false, &content, &r.request_id).await?;
        Ok(Response::new(api::PublishTemplateResponse { template: Some(made) }))
    }

    async fn reset_template(
        &self,
        request: Request<api::ResetTemplateRequest>,
    ) -> Result<Response<api::ResetTemplateResponse>, Status> {
        let account = manager(&request)?;
        let r = request.into_inner();
        let (kind, channel) = which(r.r#type, r.channel)?;
        let made = self.publish(&account, kind, channel, true, &Content::default(), &r.request_id).await?;
        Ok(Response::new(api::ResetTemplateResponse { template: Some(made) }))
    }
}

impl Templates {
    async fn publish(
        &self,
        account: &AccountId,
        kind: MessageType,
        channel: Channel,
        built_in: bool,
        content: &Content,
        request_id: &str,
    ) -> Result<api::Template, Status> {
        crate::send::check_request_id(request_id).map_err(Status::invalid_argument)?;
        let made = store::publish(&self.pool, account, kind, channel, built_in, content, request_id).await;
        match made {
            Ok(made) => {
                self.relay.wake();
                tracing::info!(account_id = %account, %kind, %channel, version = made.version, built_in, "template published");
                Ok(template(&made))
            }
            Err(PublishError::Reused(id)) => {
                Err(Status::already_exists(format!("request_id {id} was already used for a different template")))
            }
            Err(PublishError::Database(error)) => Err(internal(error)),
        }
    }
}

/// The caller's account, if its token's role may change the account's templates.
fn manager<T>(request: &Request<T>) -> Result<AccountId, Status> {
    let account = account_of(request)?;
    if !role_of(request).manages_account() {
        return Err(Status::permission_denied("changing templates needs a token whose role is owner or office"));
    }
    Ok(account)
}

/// The automatic type and channel a request names.
fn which(kind: i32, channel: i32) -> Result<(MessageType, Channel), Status> {
    let kind = MessageType::from_proto(kind).filter(|k| catalogue::AUTOMATIC.contains(k)).ok_or_else(|| {
        Status::invalid_argument("type must be an automatic message type (manual messages have no templates)")
    })?;
    let channel =
        Channel::from_proto(channel).ok_or_else(|| Status::invalid_argument("channel must be SMS or email"))?;
    if !catalogue::channels(kind).contains(&channel) {
        return Err(Status::invalid_argument(format!(
            "{kind} messages go by SMS only; they have no {channel} template"
        )));
    }
    Ok((kind, channel))
}

fn content(given: Option<api::TemplateContent>) -> Content {
    let given = given.unwrap_or_default();
    Content { sms_body: given.sms_body, subject: given.subject, text: given.text, html: given.html }
}

/// Each part of `content` the channel uses, checked; `rendered` with sample data (or `job`'s
/// values) when all pass. An email's HTML part may be left empty: its text part is then sent as
/// simple HTML.
fn preview(
    kind: MessageType,
    channel: Channel,
    content: &Content,
    job: Option<&Values>,
) -> api::PreviewTemplateResponse {
    let parts: [(&str, Part, &str); 4] = [
        ("sms_body", Part::Sms, &content.sms_body),
        ("subject", Part::Subject, &content.subject),
        ("text", Part::Text, &content.text),
        ("html", Part::Html, &content.html),
    ];
    let mut response = api::PreviewTemplateResponse::default();
    let mut rendered = api::TemplateContent::default();
    for (name, part, source) in parts {
        let used = match channel {
            Channel::Sms => part == Part::Sms,
            Channel::Email => part != Part::Sms,
        };
        if !used {
            if !source.is_empty() {
                let problem = Problem::at(0, format!("{name} is not a part of {channel} templates; leave it empty"));
                response.problems.push(problem_of(name, problem));
            }
            continue;
        }
        if part == Part::Html && source.is_empty() {
            continue;
        }
        match messaging_templates::validate(kind, part, source) {
            Ok(checked) => {
                let field = match part {
                    Part::Sms => &mut rendered.sms_body,
                    Part::Subject => &mut rendered.subject,
                    Part::Text => &mut rendered.text,
                    Part::Html => &mut rendered.html,
                };
                match job.map(|values| messaging_templates::render(part, source, values)) {
                    None => *field = checked.preview,
                    Some(Ok(text)) => *field = text,
                    Some(Err(p)) => {
                        let message =
                            format!("with this message's job data: {} (the built-in wording would go)", p.message);
                        response.problems.push(problem_of(name, Problem { message, ..p }));
                    }
                }
                if let Some(cost) = checked.sms {
                    response.sms_cost = Some(api::SmsCost {
                        encoding: cost.sample.encoding.as_str().to_owned(),
                        segments: cost.sample.count,
                        worst_encoding: cost.worst.encoding.as_str().to_owned(),
                        worst_segments: cost.worst.count,
                    });
                }
            }
            Err(problems) => response.problems.extend(problems.into_iter().map(|p| problem_of(name, p))),
        }
    }
    if response.problems.is_empty() {
        response.rendered = Some(rendered);
    }
    response
}

fn problem_of(part: &str, problem: Problem) -> api::TemplateProblem {
    api::TemplateProblem {
        part: part.to_owned(),
        line: problem.line as u32,
        message: problem.message,
        variable: problem.variable.unwrap_or_default(),
    }
}

fn describe(problem: &api::TemplateProblem) -> String {
    match problem.line {
        0 => format!("{}: {}", problem.part, problem.message),
        line => format!("{} line {line}: {}", problem.part, problem.message),
    }
}

fn template(version: &Version) -> api::Template {
    let c = &version.content;
    api::Template {
        r#type: version.kind.to_proto(),
        channel: version.channel.to_proto(),
        version: version.version as u32,
        built_in: version.built_in,
        content: Some(if version.built_in {
            built_in(version.kind, version.channel)
        } else {
            api::TemplateContent {
                sms_body: c.sms_body.clone(),
                subject: c.subject.clone(),
                text: c.text.clone(),
                html: c.html.clone(),
            }
        }),
        published_at: Some(timestamp(version.published_at)),
    }
}

fn never_published(kind: MessageType, channel: Channel) -> api::Template {
    api::Template {
        r#type: kind.to_proto(),
        channel: channel.to_proto(),
        built_in: true,
        content: Some(built_in(kind, channel)),
        ..Default::default()
    }
}

/// The built-in wording as a template, to start an account's own from.
fn built_in(kind: MessageType, channel: Channel) -> api::TemplateContent {
    let source = messaging_templates::builtin(kind, channel);
    api::TemplateContent {
        sms_body: source.map(|s| s.sms_body.to_owned()).unwrap_or_default(),
        subject: source.map(|s| s.subject.to_owned()).unwrap_or_default(),
        text: source.map(|s| s.text.to_owned()).unwrap_or_default(),
        html: String::new(),
    }
}

fn variable(v: &catalogue::Variable) -> api::TemplateVariable {
    let types = if v.types.is_empty() { catalogue::AUTOMATIC } else { v.types };
    api::TemplateVariable {
        name: v.name.to_owned(),
        kind: v.kind.as_str().to_owned(),
        meaning: v.meaning.to_owned(),
        types: types.iter().map(|t| t.to_proto()).collect(),
        sample: v.sample.to_owned(),
        longest: v.longest as u32,
    }
}
