// Package promote owns Releases in Environments: policies, approvals,
// verification, promotion, rollback by digest, history and locks.
//
// The same release, the same digests, moves from stage to stage; nothing
// is built on the way. The stages and their policies come from the
// release itself: the Pipeline of its rendered manifest (dev auto,
// staging auto, prod one approval when the repository declares none),
// above the floor the server's configuration sets.
//
// # Floors
//
// Gates belong to the server, not to the repository: whoever can push
// writes the Pipeline. Each environment has a Floor (Environment.Floor;
// DefaultFloor gives prod one approval without self-approval, so that a
// commit cannot take prod's approval away out of the box). A release's
// stage may tighten it (more approvals, a narrower approver list, a
// shorter expiry, more checks, a longer soak), never loosen it: fewer
// approvals, an auto or approval-less stage where the floor gates,
// self-approval where the floor forbids it, approvers outside the
// floor's (a member of a group the floor lists counts as inside), a
// stage not after the floor's From, or the gated environment as the
// first stage (which the pipeline deploys to by itself).
//
// Decision: such a release is refused, not merged up to the floor. A
// merge would deploy under a policy nobody wrote down; a refusal says, in
// the promotion's reason, which configuration key the Pipeline goes
// below, and the repository fixes its Pipeline. The check runs where a
// promotion is made (Promote, carrying on, Admit for the first stage)
// and again before a waiting one is approved or starts, so a floor
// raised in the configuration also stops promotions made before it. A
// refused promotion ends "refused"; it supersedes nothing. The floor's
// checks are the exception: they are added, run before the release's
// own, and its soak is the least one, since extra checks loosen nothing.
// A rollback into a gated environment goes only where it went before,
// as into an approval stage.
//
// A repository that declares no Pipeline (or one that only repeats
// ferry's default) chose nothing: its stages take their environments'
// floors as their policies (floorPipeline), so a stricter floor makes it
// wait for more approvals rather than refusing it.
//
// # Flow
//
// The pipeline deploys a new release to the first stage and calls
// Deployed, which records a promotion there in status verifying. Run
// verifies it (the stage's checks, through its soak: HTTP checks through
// Target.Call, event checks through Target.Deliver, so promote knows no
// target's URLs) and, once it
// succeeded, carries the release on: every stage whose From stages it has
// all succeeded in gets a promotion, approved at once for an auto stage,
// pending for a stage with an approval policy. A stage with neither takes
// releases only from Promote. A new promotion supersedes the pending ones
// of older releases into its environment, except pinned ones: a promotion
// someone asked for with Promote is pinned.
//
// Run executes approved promotions one at a time per environment, oldest
// first: deploying (Target.Apply), then verifying; a failed check rolls
// the environment back to the release live before, ends the promotion
// rolled-back with the check's words, and promotes nothing downstream.
// The lock of an environment is in-process while ferry runs, and the
// promotion row in deploying or verifying status across restarts (the
// store allows one per environment): Run takes such rows up at its start,
// applies the release again (a no-op when it runs) and verifies it again,
// so each ends succeeded or rolled back. A soak starts again after a
// restart, as the functions did.
//
// # Freezes and holds
//
// A frozen environment (by Freeze, or in a freeze window of the
// configuration) refuses Promote with the reason. An automatic promotion
// into it is recorded pending with the reason ("waiting: …"), superseded
// by newer ones, and goes once the freeze ends. An approved promotion
// waits as well; approvals that expire meanwhile no longer count, and it
// goes back to pending. Approvals are still taken during a freeze, and
// rollbacks still go: they are not promotions.
//
// A manual Rollback holds the environment: automatic promotions into it
// (the ones ferry made, requester "ferry") wait, as during a freeze, until
// Resume. Resume then lets the waiting ones go, oldest first: for an auto
// stage that is the newest release, as older ones were superseded while
// it waited. Promotions someone asked for are not held.
//
// The first stage is no exception: the pipeline asks Admit before it
// deploys there, and when the stage is frozen or held Admit records a
// pending promotion of the new release (superseding older waiting ones)
// instead, which Resume, Unfreeze or the end of the freeze window lets
// go like any other.
//
// # Rollbacks
//
// Rollback goes, without building, to the release before (the newest one
// the environment ran that it was not rolled back from, so rolling back
// twice goes two releases back), to a release id (pulled from the
// registry and recorded, kind pulled, when the store does not hold it), or
// to the live release with one function's image pinned to another digest
// (pushed as a release of its own, kind pinned). Into a stage with an
// approval policy a rollback goes only where the policy let it before: a
// release the environment ran, or an image the function ran there.
//
// A rollback deploys only what ferry built or was told to allow
// (images.go): a pinned image ferry recorded a build of for the live
// release's source, a release pulled from ferry's own release repository
// whose images are such builds, or anything under a prefix of
// Config.AllowedImages, matched on whole path segments; a tag never. The
// check comes before any request to the image's registry. What the target
// then refuses for what the image holds (environments.ErrRefusedImage)
// leaves the environment on its release.
//
// # History
//
// Every deployment is recorded with its release, commit, actor, promotion,
// time, kind (deploy, rollback, auto-rollback) and verification result;
// approvals and rejections with actor, time and comment; the audit log
// has promotion.create, promotion.approve, promotion.reject,
// promotion.refuse, deploy,
// rollback, freeze, unfreeze and resume. The store pages every list.
package promote
